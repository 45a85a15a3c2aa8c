#!/bin/sh
# ue-prefect -- Universal Template "Prefect (ue-prefect)", script body for Linux/Unix agents.
#
# This file is embedded verbatim in Prefect.universaltemplate.json (key "script");
# uac_test.go fails when the two differ.
#
# Before the agent runs this script the Controller replaces, as plain text,
#   dollar-brace ops_PF_<field> variables   with the task's field values,
#   dollar-brace ops_task_id                with the task instance sys_id,
#   the _credentialUser/_credentialPwd functions with the credential's fields.
# Every value is captured through a here-document with a quoted delimiter, so the
# shell never expands what the Controller inserted ($, backquotes, quotes and
# backslashes in a password or in the parameters JSON survive untouched).
# Values reach ue-prefect only as environment variables, never as arguments.
#
# Rule for editors: the only dollar-brace sequences in this file are Controller
# references. Shell variables are written as $name.

pf_action=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_action}
UE_PREFECT_VALUE
)
pf_target=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_target}
UE_PREFECT_VALUE
)
pf_cred_user=$(cat <<'UE_PREFECT_VALUE'
${_credentialUser('${ops_PF_credentials}')}
UE_PREFECT_VALUE
)
pf_cred_pwd=$(cat <<'UE_PREFECT_VALUE'
${_credentialPwd('${ops_PF_credentials}')}
UE_PREFECT_VALUE
)
pf_api_url=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_api_url}
UE_PREFECT_VALUE
)
pf_workspace=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_workspace}
UE_PREFECT_VALUE
)
pf_deployment=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_deployment}
UE_PREFECT_VALUE
)
pf_flow_run_name=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_flow_run_name}
UE_PREFECT_VALUE
)
pf_additional_params=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_additional_params}
UE_PREFECT_VALUE
)
pf_parameters=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_parameters}
UE_PREFECT_VALUE
)
pf_wait=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_wait}
UE_PREFECT_VALUE
)
pf_polling_interval=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_polling_interval}
UE_PREFECT_VALUE
)
pf_max_polls=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_max_polls}
UE_PREFECT_VALUE
)
pf_output_options=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_output_options}
UE_PREFECT_VALUE
)
pf_cancel_on_cancel=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_cancel_on_cancel}
UE_PREFECT_VALUE
)
pf_stream_logs=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_stream_logs}
UE_PREFECT_VALUE
)
pf_binary_path=$(cat <<'UE_PREFECT_VALUE'
${ops_PF_binary_path}
UE_PREFECT_VALUE
)
pf_task_instance=$(cat <<'UE_PREFECT_VALUE'
${ops_task_id}
UE_PREFECT_VALUE
)

# A reference the Controller could not resolve stays as literal text; treat it as empty.
pf_clean() {
    case $1 in
        \$\{*\}) printf '' ;;
        *) printf '%s' "$1" ;;
    esac
}
pf_lower() {
    printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}
# Checkbox fields arrive as true/false; be lenient with other spellings.
pf_bool() {
    case $(pf_lower "$(pf_clean "$1")") in
        true | yes | y | 1 | on) printf 'true' ;;
        *) printf 'false' ;;
    esac
}
# Export NAME=VALUE, or remove NAME from the environment when VALUE is empty so
# that nothing inherited from the agent's environment leaks in.
pf_export() {
    if [ -n "$2" ]; then
        eval "$1=\$2"
        export "$1"
    else
        unset "$1"
    fi
}
# A minimal extension-output document for failures detected before ue-prefect runs
# (ue-prefect itself always prints exactly one such document on stdout).
# $2 must be JSON-safe (fixed text); $3 is an optional detail for stderr only.
pf_fail() {
    printf '{"exit_code": %s, "status_description": "%s", "result": {}}\n' "$1" "$2"
    echo "ue-prefect-task: $2 $3" >&2
    exit "$1"
}

pf_action=$(pf_clean "$pf_action")
pf_target=$(pf_clean "$pf_target")
pf_cred_user=$(pf_clean "$pf_cred_user")
pf_cred_pwd=$(pf_clean "$pf_cred_pwd")
pf_api_url=$(pf_clean "$pf_api_url")
pf_workspace=$(pf_clean "$pf_workspace")
pf_deployment=$(pf_clean "$pf_deployment")
pf_flow_run_name=$(pf_clean "$pf_flow_run_name")
pf_parameters=$(pf_clean "$pf_parameters")
pf_polling_interval=$(pf_clean "$pf_polling_interval")
pf_max_polls=$(pf_clean "$pf_max_polls")
pf_output_options=$(pf_clean "$pf_output_options")
pf_binary_path=$(pf_clean "$pf_binary_path")
pf_task_instance=$(pf_clean "$pf_task_instance")

# Choice fields: the Controller may hand over the stored value or the label shown
# in the form. Both are accepted; anything unknown goes to ue-prefect unchanged so
# that it reports a Data Validation Error (exit 20) in its own output document.
case $(pf_lower "$pf_action") in
    '' | 'launch flow run' | launch | launch_flow_run | 'prefect cloud - launch flow run') ;;
    *) pf_fail 20 "Data Validation Error: unsupported Action; supported: Launch Flow Run." ;;
esac

case $(pf_lower "$pf_target") in
    '' | cloud | 'prefect cloud' | prefect_cloud) pf_target=cloud ;;
    server | self-hosted | self_hosted | 'self-hosted prefect server' | 'self hosted prefect server') pf_target=server ;;
esac

case $(pf_lower "$pf_output_options") in
    '' | 'include flow run metadata' | include_metadata | include | true) pf_include_metadata=true ;;
    'no metadata' | no_metadata | none | false) pf_include_metadata=false ;;
    *) pf_include_metadata=$pf_output_options ;;
esac

if [ "$(pf_bool "$pf_additional_params")" != true ]; then
    pf_parameters=
fi

# Credentials. Prefect Cloud: the API key is read from the credential's Runtime
# Password. Self-hosted: Runtime User + Runtime Password become basic auth
# (user:password); a password alone is sent as a bearer key.
pf_api_key=
pf_auth_string=
if [ "$pf_target" = server ]; then
    if [ -n "$pf_cred_user" ] && [ -n "$pf_cred_pwd" ]; then
        pf_auth_string="$pf_cred_user:$pf_cred_pwd"
    elif [ -n "$pf_cred_pwd" ]; then
        pf_api_key=$pf_cred_pwd
    fi
    pf_workspace=
else
    pf_api_key=$pf_cred_pwd
fi

# Idempotency key: task instance sys_id + attempt number.
# The sys_id is the same for every run of one task instance, including a Re-run,
# so the attempt number is kept in a small ledger on the agent:
#   - attempt N finished (ue-prefect wrote its extension-output file)
#       -> this launch is a deliberate Re-run: attempt N+1, new key, new flow run;
#   - attempt N started but never finished (agent or process died)
#       -> same attempt, same key: Prefect returns the existing flow run (re-attach).
# Override the ledger location with UE_PREFECT_STATE_DIR in the task's
# Environment Variables (use shared storage when an agent cluster may run the
# Re-run on another agent).
pf_key=
pf_ext_output=
pf_state_dir=$UE_PREFECT_STATE_DIR
if [ -z "$pf_state_dir" ]; then
    pf_state_dir=$TMPDIR
    [ -n "$pf_state_dir" ] || pf_state_dir=/tmp
    pf_state_dir="$pf_state_dir/ue-prefect-uac-$(id -u)"
fi
pf_instance=$(printf '%s' "$pf_task_instance" | tr -cd 'A-Za-z0-9_.-')
if [ -n "$pf_instance" ]; then
    pf_attempt=1
    if (umask 077 && mkdir -p "$pf_state_dir") 2>/dev/null && [ -w "$pf_state_dir" ]; then
        find "$pf_state_dir" -type f -mtime +30 -exec rm -f {} + 2>/dev/null
        pf_ledger="$pf_state_dir/$pf_instance.attempt"
        if [ -f "$pf_ledger" ]; then
            pf_attempt=$(tr -cd '0-9' <"$pf_ledger")
            [ -n "$pf_attempt" ] || pf_attempt=1
            if [ -s "$pf_state_dir/$pf_instance.a$pf_attempt.json" ]; then
                pf_attempt=$((pf_attempt + 1))
            fi
        fi
        (umask 077 && printf '%s\n' "$pf_attempt" >"$pf_ledger")
        pf_ext_output="$pf_state_dir/$pf_instance.a$pf_attempt.json"
        rm -f "$pf_ext_output"
    else
        echo "ue-prefect-task: warning: state directory $pf_state_dir is not writable; a Re-run will re-attach to the first flow run" >&2
    fi
    pf_key="uac-$pf_instance-a$pf_attempt"
    echo "ue-prefect-task: task instance $pf_instance, attempt $pf_attempt, idempotency key $pf_key" >&2
else
    echo "ue-prefect-task: warning: task instance id not available; launching without an idempotency key" >&2
fi

pf_export PREFECT_API_KEY "$pf_api_key"
pf_export PREFECT_API_AUTH_STRING "$pf_auth_string"
pf_export PREFECT_API_URL "$pf_api_url"
pf_export UE_PREFECT_TARGET "$pf_target"
pf_export UE_PREFECT_WORKSPACE "$pf_workspace"
pf_export UE_PREFECT_DEPLOYMENT "$pf_deployment"
pf_export UE_PREFECT_FLOW_RUN_NAME "$pf_flow_run_name"
pf_export UE_PREFECT_PARAMETERS "$pf_parameters"
pf_export UE_PREFECT_WAIT "$(pf_bool "$pf_wait")"
pf_export UE_PREFECT_POLL_INTERVAL "$pf_polling_interval"
pf_export UE_PREFECT_MAX_POLLS "$pf_max_polls"
pf_export UE_PREFECT_INCLUDE_METADATA "$pf_include_metadata"
pf_export UE_PREFECT_IDEMPOTENCY_KEY "$pf_key"
pf_export UE_PREFECT_CANCEL_ON_INTERRUPT "$(pf_bool "$pf_cancel_on_cancel")"
pf_export UE_PREFECT_STREAM_LOGS "$(pf_bool "$pf_stream_logs")"
pf_export UE_PREFECT_EXTENSION_OUTPUT "$pf_ext_output"
unset pf_cred_user pf_cred_pwd pf_api_key pf_auth_string

[ -n "$pf_binary_path" ] || pf_binary_path=ue-prefect
case $pf_binary_path in
    */*) [ -x "$pf_binary_path" ] || pf_fail 1 "Execution Failed: ue-prefect binary is not executable." "($pf_binary_path)" ;;
    *) command -v "$pf_binary_path" >/dev/null 2>&1 || pf_fail 1 "Execution Failed: ue-prefect binary not found in PATH." "($pf_binary_path)" ;;
esac

# exec: ue-prefect becomes the task process, so the Controller's Cancel reaches it
# directly (SIGTERM) and its exit code is the task's exit code.
exec "$pf_binary_path" launch
