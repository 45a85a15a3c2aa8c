package flowrun

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strings"
)

// What Prefect's server does to a schema and to the values before it
// validates them (prefect.utilities.schema_tools: preprocess_schema, then
// hydrate), mirrored so that the check is never stricter than Prefect. The
// differential test in paramschema_corpus_test.go holds it to Prefect's own
// verdicts.

// preprocessSchema mirrors preprocess_schema of Prefect 3 on a decoded
// schema, in place:
//   - a property not required, with a "type" and no "default", also accepts
//     null (_fix_null_typing: pydantic 1 leaves null out of Optional fields,
//     default_factory fields and fields with a None default); this applies to
//     the top-level properties, the properties of "definitions", and the
//     inline "properties" below them;
//   - a property whose "items" is an array gets it as "prefixItems"
//     (_fix_tuple_items: pydantic 1 tuples);
//   - a definition with "block_type_slug" also accepts a block reference,
//     {"$ref": "<uuid>"} or {"$ref": {"block_document_id": "<uuid>"}}.
//
// One deliberate difference: Prefect 3 joins the block and its reference
// with oneOf, so a reference to a block whose fields all have defaults
// matches both and is refused; Prefect 2 has no reference alternative and
// accepts that value as the block itself. anyOf accepts what either accepts.
func preprocessSchema(schema map[string]any) {
	if props, ok := schema["properties"].(map[string]any); ok {
		processProperties(props, stringList(schema["required"]))
	}
	defs, ok := schema["definitions"].(map[string]any)
	if !ok {
		return
	}
	// Python iterates over a snapshot of the values; a block replaces the
	// definition named by its title, which may add one.
	snapshot := make([]any, 0, len(defs))
	for _, k := range sortedKeys(defs) {
		snapshot = append(snapshot, defs[k])
	}
	for _, d := range snapshot {
		def, ok := d.(map[string]any)
		if !ok {
			continue
		}
		if props, ok := def["properties"].(map[string]any); ok {
			processProperties(props, stringList(def["required"]))
		}
		title, isString := def["title"].(string)
		if _, isBlock := def["block_type_slug"]; isBlock && isString {
			defs[title] = map[string]any{"anyOf": []any{def, blockReference()}}
		}
	}
}

func processProperties(props map[string]any, required []string) {
	for key, p := range props {
		s, ok := p.(map[string]any)
		if !ok {
			continue
		}
		fixNullTyping(key, s, required)
		fixTupleItems(s)
		if sub, ok := s["properties"].(map[string]any); ok {
			processProperties(sub, stringList(s["required"]))
		}
	}
}

func fixNullTyping(key string, s map[string]any, required []string) {
	t, hasType := s["type"]
	_, hasDefault := s["default"]
	if !hasType || t == "null" || hasDefault {
		return
	}
	for _, r := range required {
		if r == key {
			return
		}
	}
	s["anyOf"] = []any{map[string]any{"type": t}, map[string]any{"type": "null"}}
	delete(s, "type")
}

func fixTupleItems(s map[string]any) {
	items, ok := s["items"].([]any)
	if !ok || len(items) == 0 || truthy(s["prefixItems"]) {
		return
	}
	s["prefixItems"] = items
	delete(s, "items")
}

func blockReference() map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"$ref": map[string]any{"oneOf": []any{
				map[string]any{"type": "string", "format": "uuid"},
				map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "minProperties": 1.0}, // float64, as json.Unmarshal gives numbers
			}},
		},
		"required": []any{"$ref"},
	}
}

// relaxSchema removes, in place, what this validator would judge more
// strictly than Prefect's (Python's jsonschema): a "$schema" other than
// draft 2020-12 (Prefect validates every schema as 2020-12); a fractional
// "multipleOf" (where the float quotient overflows, Python falls back to
// exact fractions and this validator refuses); a "pattern" whose meaning differs between Python's re and Go's
// RE2 ($ also matches before a final newline, \d \w \s \b match Unicode,
// [:class:] is literal) or that RE2 cannot compile, and likewise in
// patternProperties (with the additionalProperties beside them). Values
// (enum, const, default, examples) are left alone.
func relaxSchema(v any, depth int) {
	if depth > MaxResponseDepth {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if depth == 0 {
			delete(x, "$schema")
		}
		if m, ok := x["multipleOf"].(float64); ok && m != math.Trunc(m) {
			delete(x, "multipleOf")
		}
		if p, ok := x["pattern"].(string); ok && !portablePattern(p) {
			delete(x, "pattern")
		}
		if pp, ok := x["patternProperties"].(map[string]any); ok {
			for p := range pp {
				if !portablePattern(p) {
					// Which properties it covers is uncertain, and so is
					// what additionalProperties leaves.
					delete(x, "patternProperties")
					delete(x, "additionalProperties")
					break
				}
			}
		}
		for k, sub := range x {
			switch k {
			case "enum", "const", "default", "examples":
				continue
			}
			relaxSchema(sub, depth+1)
		}
	case []any:
		for _, sub := range x {
			relaxSchema(sub, depth+1)
		}
	}
}

var unportable = regexp.MustCompile(`\$|\\[dDwWsSbBAZzpP]|\[:`)

func portablePattern(p string) bool {
	if unportable.MatchString(p) {
		return false
	}
	_, err := regexp.Compile(p)
	return err == nil
}

// exactNumbers reports whether every number in v is one a float64 holds as
// Python does: past 2^53 a float64 rounds where Python's int is exact, and
// bounds, multipleOf and enums would be judged on another number.
func exactNumbers(v any, depth int) bool {
	if depth > MaxResponseDepth {
		return false
	}
	switch x := v.(type) {
	case float64:
		return math.Abs(x) < 1<<53
	case map[string]any:
		for _, e := range x {
			if !exactNumbers(e, depth+1) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !exactNumbers(e, depth+1) {
				return false
			}
		}
	}
	return true
}

// Hydration results that are not plain JSON values.
type (
	// removedValue is dropped from its parent object or array (Prefect's
	// RemoveValue, from {"__prefect_kind": "json"} without a value).
	removedValue struct{}
	// unknownValue is what only the server knows: a workspace variable, a
	// rendered Jinja template. Prefect may also refuse it (a variable that
	// does not exist, a template that does not render).
	unknownValue struct{}
	// hydrationError is a placeholder Prefect refuses with 400 whatever
	// the server holds.
	hydrationError struct{ msg string }
)

// hydrate mirrors Prefect's _hydrate with raise_on_error and rendering on,
// as create_flow_run calls it, as far as the client can know the result.
func hydrate(v any, depth int) any {
	if depth > MaxResponseDepth {
		return unknownValue{}
	}
	switch x := v.(type) {
	case map[string]any:
		if kind, ok := x["__prefect_kind"]; ok {
			return hydrateKind(kind, x, depth)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			h := hydrate(e, depth+1)
			if _, gone := h.(removedValue); !gone {
				out[k] = h
			}
		}
		return out
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			h := hydrate(e, depth+1)
			if _, gone := h.(removedValue); !gone {
				out = append(out, h)
			}
		}
		return out
	}
	return v
}

// isPlaceholder reports a hydration result Prefect's handlers return as is.
func isPlaceholder(v any) bool {
	switch v.(type) {
	case removedValue, unknownValue, hydrationError:
		return true
	}
	return false
}

func hydrateKind(kind any, obj map[string]any, depth int) any {
	switch kind.(type) {
	case map[string]any, []any:
		return unknownValue{} // unhashable in Python: the server fails
	case string:
	default:
		return obj["value"] // not a handler: the value, unhydrated
	}
	switch kind {
	case "none":
		v, ok := obj["value"]
		if !ok {
			return hydrationError{"Missing 'value' key in __prefect object"}
		}
		return hydrate(v, depth+1)
	case "json":
		v, ok := obj["value"]
		if !ok {
			return removedValue{}
		}
		if m, isMap := v.(map[string]any); isMap {
			v = hydrate(m, depth+1)
		}
		s, isString := v.(string)
		if isPlaceholder(v) || !isString {
			return v
		}
		var parsed any
		if err := json.Unmarshal([]byte(s), &parsed); err != nil {
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) && !strings.Contains(s, "NaN") && !strings.Contains(s, "Infinity") {
				return hydrationError{"Invalid JSON: " + clip(err.Error())}
			}
			return unknownValue{} // Python reads NaN, Infinity and huge numbers
		}
		return parsed // not hydrated again, as in Prefect
	case "jinja", "workspace_variable":
		key := "template"
		if kind == "workspace_variable" {
			key = "variable_name"
		}
		v, ok := obj[key]
		if !ok {
			if kind == "jinja" {
				return hydrationError{"Missing 'template' key in __prefect object"}
			}
			return removedValue{}
		}
		if m, isMap := v.(map[string]any); isMap {
			if h := hydrate(m, depth+1); isPlaceholder(h) {
				return h
			}
		}
		return unknownValue{}
	}
	return obj["value"]
}

// hydrationState finds, in a hydrated value, the first hydration error and
// whether any part of it is unknown.
func hydrationState(v any, depth int) (errMsg string, unknown bool) {
	if depth > MaxResponseDepth {
		return "", true
	}
	switch x := v.(type) {
	case hydrationError:
		return x.msg, false
	case unknownValue:
		return "", true
	case map[string]any:
		for _, k := range sortedKeys(x) {
			m, u := hydrationState(x[k], depth+1)
			if m != "" {
				return m, false
			}
			unknown = unknown || u
		}
	case []any:
		for _, e := range x {
			m, u := hydrationState(e, depth+1)
			if m != "" {
				return m, false
			}
			unknown = unknown || u
		}
	}
	return "", unknown
}

func stringList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
