package flowrun

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The JSON Schema validator of the parameter check: the subset of draft
// 2020-12 (https://json-schema.org/draft/2020-12/json-schema-validation)
// that the schemas of Prefect's parameter_schema() use, over the decoded
// schema, written here rather than imported so that the plugin carries no
// schema library (issue 18: 1.1 MB of module and about a fifth of the warm
// start's CPU). Prefect's server validates every schema as 2020-12
// (Draft202012Validator), draft-07 ones included, and so does this.
//
// Keywords it applies:
//   - core: $ref to a local JSON pointer ("#", "#/definitions/X",
//     "#/$defs/X"), with its sibling keywords applied too, as 2020-12 does;
//     boolean schemas; $defs and definitions as the targets of $ref.
//   - any value: type (a name or a list; an integer is a number with no
//     fraction, 3.0 included), enum, const (booleans are not numbers).
//   - numbers: multipleOf, minimum, maximum, exclusiveMinimum,
//     exclusiveMaximum (as numbers, the 2020-12 form).
//   - strings: minLength, maxLength (in code points), pattern (unanchored,
//     as Python's re.search).
//   - arrays: prefixItems, items (the schema form), minItems, maxItems,
//     uniqueItems.
//   - objects: properties, patternProperties, additionalProperties,
//     required, minProperties, maxProperties.
//   - applicators: allOf, anyOf, oneOf, not, if/then/else.
//
// Everything else is left to the server, which can only make the check
// accept more: format (Prefect's server asserts no format either), the
// legacy array form of items (a pydantic 1 tuple below the top level, which
// Prefect's server fails on), contains, propertyNames, dependentRequired,
// dependentSchemas, unevaluatedItems, unevaluatedProperties, $anchor,
// $id-based and remote references. checkSchemaRefs has already refused
// dynamic, remote and cyclic references, and relaxSchema has removed what
// Go would judge more strictly than Python (paramprefect.go).
//
// A schema the validator cannot use is reported as such, never as a
// violation, so that it only warns: a keyword whose value is not of the
// kind the specification requires ({"type": 7}, "required": "x"; see
// checkKeywords), a reference that points at nothing, a schema too deep or
// too costly to apply (miniMaxSteps).

// errUnusable marks a schema the validator cannot use.
type errUnusable struct{ msg string }

func (e *errUnusable) Error() string { return e.msg }

// miniMaxSteps bounds the subschemas one validation applies; past it the
// schema is unusable rather than half-checked (a give-up counted as a pass
// would turn "not" and "oneOf" into false rejections).
const miniMaxSteps = 200_000

type miniValidator struct {
	root  map[string]any
	res   map[string]*regexp.Regexp
	steps int
	bad   *errUnusable // set once: the schema cannot be used
}

// miniValidate validates value against the root schema's property name,
// resolving references against root. It returns a *errUnusable when the
// schema cannot be used, or the first violation, in the form
// "validating <location>: <keyword>: <what>" that validationMessage reads.
func miniValidate(root map[string]any, name string, value any) error {
	mv := &miniValidator{root: root, res: map[string]*regexp.Regexp{}}
	props, _ := root["properties"].(map[string]any)
	loc := "/properties/" + escapePointer(name)
	err := mv.validate(value, props[name], loc, 0)
	if mv.bad != nil {
		return mv.bad
	}
	if err != nil {
		return fmt.Errorf("validating root: validating %s: %w", loc, err)
	}
	return nil
}

func (mv *miniValidator) unusable(format string, args ...any) error {
	if mv.bad == nil {
		mv.bad = &errUnusable{fmt.Sprintf(format, args...)}
	}
	return mv.bad
}

// valid reports whether v matches s; a schema found unusable on the way
// counts as a match, and miniValidate reports it in place of any verdict.
func (mv *miniValidator) valid(v, s any, loc string, depth int) bool {
	return mv.validate(v, s, loc, depth) == nil || mv.bad != nil
}

func (mv *miniValidator) validate(v, sch any, loc string, depth int) error {
	if mv.bad != nil {
		return mv.bad
	}
	mv.steps++
	if depth > MaxResponseDepth {
		return mv.unusable("the schema nests deeper than %d at %s", MaxResponseDepth, clip(loc))
	}
	if mv.steps > miniMaxSteps {
		return mv.unusable("the schema takes more than %d steps to apply", miniMaxSteps)
	}
	switch s := sch.(type) {
	case bool:
		if !s {
			return errors.New("false schema")
		}
		return nil
	case map[string]any:
		return mv.object(v, s, loc, depth)
	}
	return mv.unusable("not a schema at %s", clip(loc))
}

// miniType is the JSON type of a decoded value, "integer" for a number
// with no fraction.
func miniType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return ""
}

// miniTypeOK reports whether a value of type have matches "type" want (a
// name or a list of names; checkKeywords has checked its form).
func miniTypeOK(have string, want any) bool {
	match := func(w any) bool { return w == have || w == "number" && have == "integer" }
	if ws, ok := want.([]any); ok {
		for _, w := range ws {
			if match(w) {
				return true
			}
		}
		return false
	}
	return match(want)
}

// miniEqual is JSON equality: numbers by value, a boolean never equal to
// a number, objects regardless of key order.
func miniEqual(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !miniEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !miniEqual(e, f) {
				return false
			}
		}
		return true
	case nil, bool, float64, string:
		return a == b
	}
	return false
}

func (mv *miniValidator) regexp(p string) *regexp.Regexp {
	re, ok := mv.res[p]
	if !ok {
		re, _ = regexp.Compile(p) // checkKeywords has compiled it once
		mv.res[p] = re
	}
	return re
}

func (mv *miniValidator) object(v any, s map[string]any, loc string, depth int) error {
	if ref, ok := s["$ref"].(string); ok {
		target, err := localRefMap(mv.root, ref)
		if err != nil {
			return mv.unusable("%s", err.Error())
		}
		ptr := strings.TrimPrefix(ref, "#")
		if err := mv.validate(v, target, ptr, depth+1); err != nil {
			return fmt.Errorf("validating %s: %w", ptr, err)
		}
	}
	have := miniType(v)
	if t, ok := s["type"]; ok && !miniTypeOK(have, t) {
		want := fmt.Sprint(t)
		if ts, ok := t.(string); ok {
			want = fmt.Sprintf("%q", ts)
		}
		return fmt.Errorf("type: %v has type %q, want %s", miniShow(v), have, want)
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if miniEqual(v, x) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("enum: %v does not equal any of: %v", miniShow(v), e)
		}
	}
	if c, ok := s["const"]; ok && !miniEqual(v, c) {
		return fmt.Errorf("const: %v does not equal %v", miniShow(v), c)
	}
	if n, ok := v.(float64); ok {
		if err := numberKeywords(n, s); err != nil {
			return err
		}
	}
	if str, ok := v.(string); ok {
		n := float64(utf8.RuneCountInString(str))
		if b, ok := s["minLength"].(float64); ok && n < b {
			return fmt.Errorf("minLength: %q contains %v Unicode code points, fewer than %v", str, n, b)
		}
		if b, ok := s["maxLength"].(float64); ok && n > b {
			return fmt.Errorf("maxLength: %q contains %v Unicode code points, more than %v", str, n, b)
		}
		if p, ok := s["pattern"].(string); ok {
			if re := mv.regexp(p); re != nil && !re.MatchString(str) {
				return fmt.Errorf("pattern: %q does not match regular expression %q", str, p)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if err := mv.array(arr, s, loc, depth); err != nil {
			return err
		}
	}
	if obj, ok := v.(map[string]any); ok {
		if err := mv.objectKeywords(obj, s, loc, depth); err != nil {
			return err
		}
	}
	return mv.applicators(v, s, loc, depth)
}

func numberKeywords(n float64, s map[string]any) error {
	if m, ok := s["multipleOf"].(float64); ok && math.Mod(n, m) != 0 {
		return fmt.Errorf("multipleOf: %v is not a multiple of %v", n, m)
	}
	if b, ok := s["minimum"].(float64); ok && n < b {
		return fmt.Errorf("minimum: %v is less than %v", n, b)
	}
	if b, ok := s["maximum"].(float64); ok && n > b {
		return fmt.Errorf("maximum: %v is greater than %v", n, b)
	}
	if b, ok := s["exclusiveMinimum"].(float64); ok && n <= b {
		return fmt.Errorf("exclusiveMinimum: %v is less than or equal to %v", n, b)
	}
	if b, ok := s["exclusiveMaximum"].(float64); ok && n >= b {
		return fmt.Errorf("exclusiveMaximum: %v is greater than or equal to %v", n, b)
	}
	return nil
}

func (mv *miniValidator) array(arr []any, s map[string]any, loc string, depth int) error {
	n := float64(len(arr))
	if b, ok := s["minItems"].(float64); ok && n < b {
		return fmt.Errorf("minItems: array length %v is less than %v", n, b)
	}
	if b, ok := s["maxItems"].(float64); ok && n > b {
		return fmt.Errorf("maxItems: array length %v is greater than %v", n, b)
	}
	prefix, _ := s["prefixItems"].([]any)
	for i, ps := range prefix {
		if i >= len(arr) {
			break
		}
		l := fmt.Sprintf("%s/prefixItems/%d", loc, i)
		if err := mv.validate(arr[i], ps, l, depth+1); err != nil {
			return fmt.Errorf("validating %s: %w", l, err)
		}
	}
	if items, ok := s["items"]; ok {
		if _, legacy := items.([]any); !legacy {
			for i := len(prefix); i < len(arr); i++ {
				if err := mv.validate(arr[i], items, loc+"/items", depth+1); err != nil {
					return fmt.Errorf("validating %s: %w", loc+"/items", err)
				}
			}
		}
	}
	if u, _ := s["uniqueItems"].(bool); u {
		for i := range arr {
			mv.steps += i
			if mv.steps > miniMaxSteps {
				return mv.unusable("the schema takes more than %d steps to apply", miniMaxSteps)
			}
			for j := 0; j < i; j++ {
				if miniEqual(arr[i], arr[j]) {
					return fmt.Errorf("uniqueItems: array items %d and %d are equal", j, i)
				}
			}
		}
	}
	return nil
}

func (mv *miniValidator) objectKeywords(obj map[string]any, s map[string]any, loc string, depth int) error {
	n := float64(len(obj))
	if b, ok := s["minProperties"].(float64); ok && n < b {
		return fmt.Errorf("minProperties: object has %v properties, less than %v", n, b)
	}
	if b, ok := s["maxProperties"].(float64); ok && n > b {
		return fmt.Errorf("maxProperties: object has %v properties, greater than %v", n, b)
	}
	var missing []string
	for _, k := range stringList(s["required"]) {
		if _, has := obj[k]; !has {
			missing = append(missing, fmt.Sprintf("%q", k))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("required: missing properties: [%s]", strings.Join(missing, " "))
	}
	props, _ := s["properties"].(map[string]any)
	pprops, _ := s["patternProperties"].(map[string]any)
	ap, hasAP := s["additionalProperties"]
	var extra []string
	for _, k := range sortedKeys(obj) {
		matched := false
		if ps, ok := props[k]; ok {
			matched = true
			l := loc + "/properties/" + escapePointer(k)
			if err := mv.validate(obj[k], ps, l, depth+1); err != nil {
				return fmt.Errorf("validating %s: %w", l, err)
			}
		}
		for _, p := range sortedKeys(pprops) {
			if re := mv.regexp(p); re != nil && re.MatchString(k) {
				matched = true
				l := loc + "/patternProperties/" + escapePointer(p)
				if err := mv.validate(obj[k], pprops[p], l, depth+1); err != nil {
					return fmt.Errorf("validating %s: %w", l, err)
				}
			}
		}
		if !hasAP || matched {
			continue
		}
		if b, isBool := ap.(bool); isBool && !b {
			extra = append(extra, fmt.Sprintf("%q", k))
		} else if err := mv.validate(obj[k], ap, loc+"/additionalProperties", depth+1); err != nil {
			return fmt.Errorf("validating %s: %w", loc+"/additionalProperties", err)
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("unexpected additional properties [%s]", strings.Join(extra, " "))
	}
	return nil
}

func (mv *miniValidator) applicators(v any, s map[string]any, loc string, depth int) error {
	if all, ok := s["allOf"].([]any); ok {
		for i, sub := range all {
			l := fmt.Sprintf("%s/allOf/%d", loc, i)
			if err := mv.validate(v, sub, l, depth+1); err != nil {
				return fmt.Errorf("validating %s: %w", l, err)
			}
		}
	}
	if alts, ok := s["anyOf"].([]any); ok {
		var errs []string
		for i, sub := range alts {
			l := fmt.Sprintf("%s/anyOf/%d", loc, i)
			err := mv.validate(v, sub, l, depth+1)
			if err == nil || mv.bad != nil {
				errs = nil
				break
			}
			errs = append(errs, fmt.Sprintf("validating %s: %v", l, err))
		}
		if errs != nil {
			return fmt.Errorf("anyOf: did not validate against any of the alternatives:\n%s", strings.Join(errs, "\n"))
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		n := 0
		for i, sub := range one {
			if mv.valid(v, sub, fmt.Sprintf("%s/oneOf/%d", loc, i), depth+1) {
				n++
			}
		}
		if mv.bad != nil {
			return mv.bad
		}
		if n != 1 {
			return fmt.Errorf("oneOf: validated against %d of the alternatives, want one", n)
		}
	}
	if not, ok := s["not"]; ok {
		matches := mv.valid(v, not, loc+"/not", depth+1)
		if mv.bad != nil {
			return mv.bad
		}
		if matches {
			return errors.New("not: validated against the schema it must not match")
		}
	}
	if cond, ok := s["if"]; ok {
		branch, key := s["else"], "else"
		if mv.valid(v, cond, loc+"/if", depth+1) {
			branch, key = s["then"], "then"
		}
		if mv.bad != nil {
			return mv.bad
		}
		if branch != nil {
			if err := mv.validate(v, branch, loc+"/"+key, depth+1); err != nil {
				return fmt.Errorf("validating %s: %w", loc+"/"+key, err)
			}
		}
	}
	return nil
}

func miniShow(v any) any {
	if v == nil {
		return "null"
	}
	return v
}

// localRefMap resolves "#" or "#/a/b" (a JSON pointer, ~0 and ~1 escaped)
// in the decoded schema.
func localRefMap(root map[string]any, ref string) (any, error) {
	if ref == "#" {
		return root, nil
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("reference %q is not local to the schema", clip(ref))
	}
	var cur any = root
	for _, p := range strings.Split(ref[2:], "/") {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		c, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q points at nothing", clip(ref))
		}
		cur = c[p]
	}
	if cur == nil {
		return nil, fmt.Errorf("reference %q points at nothing", clip(ref))
	}
	return cur, nil
}

// Keyword kinds, as the 2020-12 meta-schema requires them.
const (
	kindSchema     = iota // a schema: an object or a boolean
	kindSchemaMap         // an object of schemas
	kindSchemaList        // a non-empty array of schemas
	kindItems             // a schema, or (legacy, left to the server) an array of schemas
	kindType              // a type name, or a non-empty array of distinct ones
	kindArray             // any array
	kindNumber            // a number
	kindPositive          // a number above 0
	kindCount             // a non-negative integer
	kindString            // a string
	kindPattern           // a regular expression RE2 compiles
	kindStrings           // an array of strings
	kindBool              // true or false
)

var miniKeywords = map[string]int{
	"$ref": kindString, "$defs": kindSchemaMap, "definitions": kindSchemaMap,
	"type": kindType, "enum": kindArray,
	"multipleOf": kindPositive, "minimum": kindNumber, "maximum": kindNumber,
	"exclusiveMinimum": kindNumber, "exclusiveMaximum": kindNumber,
	"minLength": kindCount, "maxLength": kindCount, "pattern": kindPattern,
	"prefixItems": kindSchemaList, "items": kindItems,
	"minItems": kindCount, "maxItems": kindCount, "uniqueItems": kindBool,
	"properties": kindSchemaMap, "patternProperties": kindSchemaMap, "additionalProperties": kindSchema,
	"required": kindStrings, "minProperties": kindCount, "maxProperties": kindCount,
	"allOf": kindSchemaList, "anyOf": kindSchemaList, "oneOf": kindSchemaList,
	"not": kindSchema, "if": kindSchema, "then": kindSchema, "else": kindSchema,
}

var miniTypeNames = map[string]bool{
	"null": true, "boolean": true, "object": true, "array": true, "number": true, "integer": true, "string": true,
}

// checkKeywords reports the first keyword of schema s (at JSON pointer ptr)
// or of its subschemas whose value is not of the kind the validator applies:
// such a schema is unusable, as it is to Python's jsonschema, whose
// check_schema refuses it. Keywords the validator does not apply are not
// looked at.
func checkKeywords(s any, ptr string, depth int) error {
	if depth > MaxResponseDepth {
		return &errUnusable{"the schema nests too deeply"}
	}
	obj, ok := s.(map[string]any)
	if !ok {
		if _, isBool := s.(bool); isBool {
			return nil
		}
		return &errUnusable{fmt.Sprintf("not a schema at %s", clip(ptr))}
	}
	for _, k := range sortedKeys(obj) {
		kind, known := miniKeywords[k]
		if !known {
			continue
		}
		at := ptr + "/" + escapePointer(k)
		if err := checkKeyword(kind, obj[k], at, depth); err != nil {
			return err
		}
	}
	return nil
}

func checkKeyword(kind int, v any, at string, depth int) error {
	bad := func(want string) error {
		return &errUnusable{fmt.Sprintf("%s is not %s", clip(at), want)}
	}
	n, isNum := v.(float64)
	switch kind {
	case kindSchema:
		return checkKeywords(v, at, depth+1)
	case kindItems:
		if list, ok := v.([]any); ok {
			return checkSchemas(list, at, depth)
		}
		return checkKeywords(v, at, depth+1)
	case kindSchemaMap:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("an object of schemas")
		}
		for _, k := range sortedKeys(m) {
			if strings.HasSuffix(at, "/patternProperties") {
				if _, err := regexp.Compile(k); err != nil {
					return bad("keyed by regular expressions")
				}
			}
			if err := checkKeywords(m[k], at+"/"+escapePointer(k), depth+1); err != nil {
				return err
			}
		}
	case kindSchemaList:
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return bad("a non-empty array of schemas")
		}
		return checkSchemas(list, at, depth)
	case kindType:
		names, isList := v.([]any)
		if !isList {
			names = []any{v}
		}
		seen := map[string]bool{}
		for _, t := range names {
			name, _ := t.(string)
			if !miniTypeNames[name] || seen[name] {
				return bad("a type name or a list of distinct ones")
			}
			seen[name] = true
		}
		if len(names) == 0 {
			return bad("a type name or a list of distinct ones")
		}
	case kindArray:
		if _, ok := v.([]any); !ok {
			return bad("an array")
		}
	case kindNumber:
		if !isNum {
			return bad("a number")
		}
	case kindPositive:
		if !isNum || n <= 0 {
			return bad("a number above 0")
		}
	case kindCount:
		if !isNum || n < 0 || n != math.Trunc(n) {
			return bad("a non-negative integer")
		}
	case kindString:
		if _, ok := v.(string); !ok {
			return bad("a string")
		}
	case kindPattern:
		p, ok := v.(string)
		if !ok {
			return bad("a string")
		}
		if _, err := regexp.Compile(p); err != nil {
			return bad("a regular expression")
		}
	case kindStrings:
		list, ok := v.([]any)
		if !ok || len(stringList(list)) != len(list) {
			return bad("an array of strings")
		}
	case kindBool:
		if _, ok := v.(bool); !ok {
			return bad("true or false")
		}
	}
	return nil
}

func checkSchemas(list []any, at string, depth int) error {
	for i, sub := range list {
		if err := checkKeywords(sub, fmt.Sprintf("%s/%d", at, i), depth+1); err != nil {
			return err
		}
	}
	return nil
}
