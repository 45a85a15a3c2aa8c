package main

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
)

// TestOptions holds the table to its own rules: flags and variables
// unique, one destination each, a plugin field's name its abi.Fields JSON
// name, and every plugin field reachable from some option.
func TestOptions(t *testing.T) {
	flags, envs, names := map[string]bool{}, map[string]bool{}, map[string]bool{}
	jsonNames := map[string]bool{}
	ft := reflect.TypeOf(abi.Fields{})
	for i := 0; i < ft.NumField(); i++ {
		n, _, _ := strings.Cut(ft.Field(i).Tag.Get("json"), ",")
		jsonNames[n] = true
	}
	filled := map[string]bool{}
	for _, o := range options {
		if flags[o.flag] || (o.env != "" && envs[o.env]) || names[o.name] {
			t.Errorf("--%s: flag, variable or name declared twice", o.flag)
		}
		flags[o.flag], envs[o.env], names[o.name] = true, true, true
		if (o.field == nil) == (o.host == nil) {
			t.Errorf("--%s: want exactly one of field and host", o.flag)
			continue
		}
		if o.field != nil {
			// Fill the field through the option and find it by JSON name.
			var f abi.Fields
			*o.field(&f) = "x"
			b, _ := json.Marshal(f)
			var m map[string]string
			_ = json.Unmarshal(b, &m)
			if len(m) != 1 || m[o.name] != "x" {
				t.Errorf("--%s fills %s, want the abi.Fields field %q", o.flag, b, o.name)
			}
			filled[o.name] = true
		}
		if o.group == "" {
			t.Errorf("--%s has no usage group", o.flag)
		}
	}
	for n := range jsonNames {
		if !filled[n] {
			t.Errorf("abi.Fields %q has no option", n)
		}
	}
}

// TestUsage: --help shows every option with its variable and default.
func TestUsage(t *testing.T) {
	u := usage()
	for _, o := range options {
		re := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(o.flag) + `[ \n]`)
		if !re.MatchString(u) {
			t.Errorf("usage lacks --%s", o.flag)
		}
		if o.env != "" && !strings.Contains(u, "["+o.env+"]") {
			t.Errorf("usage lacks [%s]", o.env)
		}
		if o.def != "" && !strings.Contains(strings.Join(strings.Fields(u), " "), o.def) {
			t.Errorf("usage lacks the default of --%s, %q", o.flag, o.def)
		}
	}
	for _, line := range strings.Split(u, "\n") {
		if len([]rune(line)) > 100 && !strings.HasPrefix(line, "  ue-prefect ") {
			t.Errorf("usage line longer than 100 columns: %q", line)
		}
	}
}

// TestREADMEInputs holds the README's input table against the options:
// each option's flag and variable stand in one row, spelled the same, and
// the table names no flag or variable that does not exist. Within a row
// the n-th flag goes with the n-th variable.
func TestREADMEInputs(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "### Inputs")
	if start < 0 {
		t.Fatal("README has no ### Inputs section")
	}
	text = text[start:]
	if end := strings.Index(text[4:], "\n#"); end >= 0 {
		text = text[:end+4]
	}
	code := regexp.MustCompile("`([^`]*)`")
	flagRe := regexp.MustCompile(`^--([a-z-]+)`)
	envRe := regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`)
	pairs := map[string]string{} // flag → variable ("" for none)
	secretEnv := map[string]bool{"PREFECT_API_KEY": true, "PREFECT_API_AUTH_STRING": true}
	rows := 0
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "/"), "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 5 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		rows++
		var rowFlags, rowEnvs []string
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			if f := flagRe.FindStringSubmatch(m[1]); f != nil {
				rowFlags = append(rowFlags, f[1])
			}
		}
		for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
			if envRe.MatchString(m[1]) && !secretEnv[m[1]] {
				rowEnvs = append(rowEnvs, m[1])
			}
		}
		for i, f := range rowFlags {
			if _, dup := pairs[f]; dup {
				t.Errorf("README: --%s appears in two rows", f)
			}
			pairs[f] = ""
			if i < len(rowEnvs) {
				pairs[f] = rowEnvs[i]
			}
		}
		if len(rowEnvs) > len(rowFlags) {
			t.Errorf("README row has more variables than flags: %s", line)
		}
	}
	if rows == 0 {
		t.Fatal("README: no rows in the input table")
	}
	known := map[string]bool{}
	for _, o := range options {
		known[o.flag] = true
		env, ok := pairs[o.flag]
		switch {
		case !ok:
			t.Errorf("README's input table lacks --%s", o.flag)
		case env != o.env:
			t.Errorf("README pairs --%s with %q, want %q", o.flag, env, o.env)
		}
	}
	for f := range pairs {
		if !known[f] {
			t.Errorf("README's input table names --%s, which is not an option", f)
		}
	}
}
