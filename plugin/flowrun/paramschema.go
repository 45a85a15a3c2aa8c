package flowrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Parameter values against the deployment's parameter_openapi_schema.
//
// Prefect checks the values itself only when the deployment enforces its
// schema; a deployment with enforce_parameter_schema off (a 2.x client's
// default) creates a run that fails minutes later. So the machine checks
// before the create, with a JSON Schema validator of its own (draft 2020-12,
// as Prefect's server-side check; the keywords it applies are listed in
// minischema.go): types, required parameters, enums, bounds, patterns and
// nested objects as far as the schema's $refs go. The
// values checked are the deployment's default parameters overlaid with the
// user's, as the server merges them; the schema is preprocessed and the
// values hydrated as the server does (paramprefect.go), so the check is
// never stricter than Prefect (TestParamSchemaCorpus holds it to Prefect's
// own verdicts).
//
// Enforced: a violation ends the run with exit 20 naming the parameter, as
// the server would. Not enforced: a warning naming the parameter and the
// expected type, and the launch goes on, since Prefect may coerce at run
// time. A schema the validator cannot use (hostile, exotic or malformed,
// such as {"type": 7}) only warns, enforced or not.

// MaxSchemaViolations bounds the violations one message lists.
const MaxSchemaViolations = 5

// violation is one failed check, at a parameter.
type violation struct {
	param, msg string
}

// checkParamValues validates the parameters of the create against the
// deployment d's schema. It returns false when it has ended the run.
func (m *Machine) checkParamValues(d gjson.Result) bool {
	schema := d.Get("parameter_openapi_schema")
	if !schema.IsObject() || !schema.Get("properties").IsObject() {
		return true
	}
	enforced := d.Get("enforce_parameter_schema").Bool()
	params, err := mergedParams(d.Get("parameters"), m.s.Cfg.Parameters)
	var vs []violation
	if err == nil {
		vs, err = validateParams(schema.Raw, params)
	}
	if err != nil {
		m.logf(abi.LevelWarn, "Could not check the parameter values against the deployment's schema (%s); launching unchecked", clip(err.Error()))
		return true
	}
	if len(vs) == 0 {
		return true
	}
	var parts []string
	for i, v := range vs {
		if i == MaxSchemaViolations {
			parts = append(parts, fmt.Sprintf("and %d more", len(vs)-i))
			break
		}
		s := fmt.Sprintf("parameter %q: %s", v.param, v.msg)
		if t := expectedType(schema, v.param); t != "" && !strings.Contains(v.msg, "want ") {
			s += " (expected " + t + ")"
		}
		parts = append(parts, s)
	}
	name := d.Get("name").String()
	if enforced {
		m.fail(abi.Errorf(abi.CodeInvalidInput, "parameters", "deployment %q enforces its parameter schema: %s", name, strings.Join(parts, "; ")))
		return false
	}
	m.logf(abi.LevelWarn, "Parameter values do not match deployment %q's schema, which it does not enforce; launching, Prefect may coerce them at run time: %s",
		name, strings.Join(parts, "; "))
	return true
}

// mergedParams overlays the user's parameters on the deployment's defaults,
// as the server does (deployment.parameters.update(run parameters)). It
// fails on values Go cannot hold (a number past float64).
func mergedParams(defaults gjson.Result, user RawObject) (map[string]any, error) {
	out := map[string]any{}
	for _, raw := range []string{defaults.Raw, string(user)} {
		if raw == "" || !gjson.Parse(raw).IsObject() {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			return nil, err
		}
		for k, val := range obj {
			out[k] = val
		}
	}
	return out, nil
}

// validateParams returns the schema violations of params, sorted by
// parameter, or an error when the schema cannot be used. It follows the
// server: the schema is preprocessed and the values hydrated as Prefect
// does (paramprefect.go); a parameter holding a value only the server knows
// (a workspace variable, a Jinja template) is not checked, and a
// placeholder Prefect refuses whatever it holds is a violation. Required
// parameters are checked first, all of them; then each parameter is
// validated alone, against its own property (references resolve in the
// whole schema), so that every bad parameter is named (the validator stops
// at its first error). A schema that is not one, or one checkKeywords finds
// malformed, is an error, never a violation.
func validateParams(schemaJSON string, params map[string]any) (vs []violation, err error) {
	defer func() {
		if r := recover(); r != nil {
			vs, err = nil, fmt.Errorf("the validator failed: %v", r)
		}
	}()
	if err := checkSchemaRefs(gjson.Parse(schemaJSON)); err != nil {
		return nil, err
	}
	var decoded map[string]any
	if err := json.Unmarshal([]byte(schemaJSON), &decoded); err != nil {
		return nil, err
	}
	preprocessSchema(decoded)
	relaxSchema(decoded, 0)
	if err := checkKeywords(decoded, "#", 0); err != nil {
		return nil, err
	}
	if _, ok := decoded["properties"].(map[string]any); !ok {
		return nil, nil
	}
	hydrated, ok := hydrate(params, 0).(map[string]any)
	if !ok {
		return nil, nil // the parameters as a whole are a placeholder: the server decides
	}
	for _, name := range stringList(decoded["required"]) {
		if _, ok := hydrated[name]; !ok {
			msg := "required, and the deployment has no default for it"
			if _, given := params[name]; given {
				msg = "required, and its placeholder hydrates to nothing"
			}
			vs = append(vs, violation{param: name, msg: msg})
		}
	}
	for _, name := range sortedKeys(hydrated) {
		if _, declared := decoded["properties"].(map[string]any)[name]; !declared {
			continue
		}
		value := hydrated[name]
		if msg, unknown := hydrationState(value, 0); msg != "" {
			vs = append(vs, violation{param: name, msg: "Prefect cannot hydrate its placeholder: " + msg})
			continue
		} else if unknown || !exactNumbers(value, 0) {
			continue
		}
		// The parameter alone, against its own property: none of the
		// root's own keywords.
		if err := miniValidate(decoded, name, value); err != nil {
			var unusable *errUnusable
			if errors.As(err, &unusable) {
				return nil, err
			}
			vs = append(vs, violation{param: name, msg: validationMessage(err.Error())})
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].param < vs[j].param })
	return vs, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validationMessage turns the validator's "validating root: validating
// /properties/n: type: x has type "string", want "integer"" into the last
// part, with the innermost schema location when it is below the parameter.
func validationMessage(s string) string {
	loc := ""
	for strings.HasPrefix(s, "validating ") {
		where, rest, ok := strings.Cut(strings.TrimPrefix(s, "validating "), ": ")
		if !ok {
			break
		}
		loc, s = where, rest
	}
	if head, rest, ok := strings.Cut(s, "\n"); ok && strings.HasPrefix(head, "anyOf:") {
		// The alternatives' errors follow, one a line. When all but null
		// fail inside one alternative (Optional[int] given "x"), say why.
		var keep []string
		for _, l := range strings.Split(rest, "\n") {
			if !strings.HasSuffix(l, `want "null"`) {
				keep = append(keep, l)
			}
		}
		if branch := anyOfBranch(keep); branch != "" {
			msg := validationMessage(strings.Join(keep, "\n"))
			return strings.Replace(msg, " at "+branch, " at "+branch[:strings.LastIndex(branch, "/anyOf/")], 1)
		}
	}
	s, _, _ = strings.Cut(s, "\n")
	s = strings.ReplaceAll(s, "<invalid reflect.Value>", "null")
	if strings.HasPrefix(s, "anyOf:") || strings.HasPrefix(s, "oneOf:") {
		s = "matches none of the allowed forms"
	}
	s = clip(s)
	nested := strings.Count(loc, "/properties/") > 1 ||
		(strings.HasPrefix(loc, "/definitions/") || strings.HasPrefix(loc, "/$defs/")) && strings.Contains(loc, "/properties/")
	if nested {
		s += " at " + loc
	}
	return s
}

var anyOfLine = regexp.MustCompile(`^validating (\S*/anyOf/[0-9]+)(/|: )`)

// anyOfBranch returns the location of the one anyOf alternative all of
// lines are about, or "".
func anyOfBranch(lines []string) string {
	branch := ""
	for _, l := range lines {
		m := anyOfLine.FindStringSubmatch(l)
		if m == nil || branch != "" && m[1] != branch {
			return ""
		}
		branch = m[1]
	}
	return branch
}

// expectedType describes what the schema expects of parameter name:
// "integer", "string or null", "object Point", "one of \"a\", \"b\"".
func expectedType(schema gjson.Result, name string) string {
	p := schema.Get("properties." + gjson.Escape(name))
	if !p.Exists() {
		return ""
	}
	var describe func(p gjson.Result, depth int) string
	describe = func(p gjson.Result, depth int) string {
		if depth > 4 {
			return ""
		}
		if e := p.Get("enum"); e.IsArray() {
			var vals []string
			e.ForEach(func(_, v gjson.Result) bool { vals = append(vals, v.Raw); return len(vals) < 10 })
			return "one of " + strings.Join(vals, ", ")
		}
		if ref := p.Get(`\$ref`); ref.Type == gjson.String {
			target := schema.Get(strings.ReplaceAll(strings.TrimPrefix(ref.Str, "#/"), "/", "."))
			if target.Exists() && (target.Get("enum").Exists() || target.Get("type").String() != "object") {
				if s := describe(target, depth+1); s != "" {
					return s
				}
			}
			return "object " + ref.Str[strings.LastIndex(ref.Str, "/")+1:]
		}
		switch t := p.Get("type"); {
		case t.Type == gjson.String:
			return t.Str
		case t.IsArray():
			var ts []string
			t.ForEach(func(_, v gjson.Result) bool { ts = append(ts, v.String()); return true })
			return strings.Join(ts, " or ")
		}
		for _, k := range []string{"anyOf", "oneOf", "allOf"} {
			if alts := p.Get(k); alts.IsArray() {
				var ds []string
				alts.ForEach(func(_, a gjson.Result) bool {
					if s := describe(a, depth+1); s != "" {
						ds = append(ds, s)
					}
					return true
				})
				sep := " or "
				if k == "allOf" {
					sep = " and "
				}
				return strings.Join(ds, sep)
			}
		}
		return ""
	}
	return describe(p, 0)
}

// MaxSchemaFanout caps, for any subschema, the number of subschemas the
// validator may apply to the same value through $ref, allOf, anyOf, oneOf,
// not, if/then/else: a hostile schema could otherwise loop (a stack
// overflow, which no recover catches) or branch exponentially.
const MaxSchemaFanout = 10000

// checkSchemaRefs refuses a schema whose references the validator must not
// follow: non-local ones, dynamic ones, cycles that apply a schema to the
// same value again (Prefect's server refuses those too), and fan-outs past
// MaxSchemaFanout.
func checkSchemaRefs(root gjson.Result) error {
	const (
		visiting = -1
	)
	paths := map[string]int{} // pointer -> subschemas applied to one value; visiting while on the stack
	var visit func(ptr string, node gjson.Result, depth int) (int, error)
	visit = func(ptr string, node gjson.Result, depth int) (int, error) {
		switch n, seen := paths[ptr]; {
		case seen && n == visiting:
			return 0, fmt.Errorf("the schema refers to itself at %s without descending into the value", clip(ptr))
		case seen:
			return n, nil
		}
		if depth > MaxResponseDepth {
			return 0, fmt.Errorf("the schema's references nest too deeply")
		}
		paths[ptr] = visiting
		total := 1
		add := func(p string, sub gjson.Result) error {
			if !sub.IsObject() {
				return nil
			}
			n, err := visit(p, sub, depth+1)
			total += n
			if err == nil && total > MaxSchemaFanout {
				err = fmt.Errorf("the schema branches too widely")
			}
			return err
		}
		if d := node.Get(`\$dynamicRef`); d.Exists() {
			return 0, fmt.Errorf("dynamic references are not followed")
		}
		if ref := node.Get(`\$ref`); ref.Exists() {
			target, tptr, err := localRef(root, ref.String())
			if err != nil {
				return 0, err
			}
			if err := add(tptr, target); err != nil {
				return 0, err
			}
		}
		for _, k := range []string{"allOf", "anyOf", "oneOf"} {
			var err error
			node.Get(k).ForEach(func(i, sub gjson.Result) bool {
				err = add(ptr+"/"+k+"/"+i.String(), sub)
				return err == nil
			})
			if err != nil {
				return 0, err
			}
		}
		for _, k := range []string{"not", "if", "then", "else"} {
			if err := add(ptr+"/"+k, node.Get(k)); err != nil {
				return 0, err
			}
		}
		paths[ptr] = total
		return total, nil
	}
	// Every subschema that holds a reference or a combinator is a start.
	var err error
	var walk func(ptr string, v gjson.Result, depth int)
	walk = func(ptr string, v gjson.Result, depth int) {
		if err != nil || depth > MaxResponseDepth {
			return
		}
		if v.IsObject() {
			if _, e := visit(ptr, v, 0); e != nil {
				err = e
				return
			}
		}
		if v.IsObject() || v.IsArray() {
			v.ForEach(func(k, sub gjson.Result) bool {
				if v.IsObject() && valueKeyword(k.String()) {
					return true // a value, not a schema: a default may hold a block reference
				}
				walk(ptr+"/"+escapePointer(k.String()), sub, depth+1)
				return err == nil
			})
		}
	}
	walk("#", root, 0)
	return err
}

// valueKeyword reports whether keyword k of a schema holds values, not
// subschemas: their "$ref" keys are data (Prefect's block references
// {"$ref": {"block_document_id": …}} in a default), never references.
func valueKeyword(k string) bool {
	switch k {
	case "default", "enum", "const", "examples":
		return true
	}
	return false
}

// localRef resolves a reference within the schema: "#" or "#/a/b".
func localRef(root gjson.Result, ref string) (gjson.Result, string, error) {
	if ref == "#" {
		return root, "#", nil
	}
	if !strings.HasPrefix(ref, "#/") {
		return gjson.Result{}, "", fmt.Errorf("reference %q is not local to the schema", clip(ref))
	}
	var parts []string
	for _, p := range strings.Split(ref[2:], "/") {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		parts = append(parts, gjson.Escape(p))
	}
	target := root.Get(strings.Join(parts, "."))
	if !target.Exists() {
		return gjson.Result{}, "", fmt.Errorf("reference %q points at nothing", clip(ref))
	}
	return target, ref, nil
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
