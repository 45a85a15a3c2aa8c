package flowrun

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// TestMiniSchemaKeywords holds each keyword the validator applies to a value
// it accepts and one it refuses, with the message it gives.
func TestMiniSchemaKeywords(t *testing.T) {
	tests := []struct {
		keyword, schema, value string
		want                   string // "" = accepted, else a substring of the violation
	}{
		{"true schema", `true`, `"x"`, ""},
		{"false schema", `false`, `"x"`, "false schema"},
		{"type", `{"type":"integer"}`, `3.0`, ""},
		{"type", `{"type":"integer"}`, `3.5`, `has type "number", want "integer"`},
		{"type number takes an integer", `{"type":"number"}`, `3`, ""},
		{"type list", `{"type":["string","null"]}`, `null`, ""},
		{"type list", `{"type":["string","null"]}`, `true`, `has type "boolean", want [string null]`},
		{"enum", `{"enum":["a",1,{"k":[1]}]}`, `{"k":[1.0]}`, ""},
		{"enum: a boolean is not a number", `{"enum":[1]}`, `true`, "enum: true does not equal any of: [1]"},
		{"const", `{"const":{"a":1,"b":2}}`, `{"b":2,"a":1}`, ""},
		{"const", `{"const":0}`, `false`, "const: false does not equal 0"},
		{"multipleOf", `{"multipleOf":3}`, `9`, ""},
		{"multipleOf", `{"multipleOf":3}`, `10`, "multipleOf: 10 is not a multiple of 3"},
		{"minimum", `{"minimum":1}`, `1`, ""},
		{"minimum", `{"minimum":1}`, `0.5`, "minimum: 0.5 is less than 1"},
		{"maximum", `{"maximum":1}`, `2`, "maximum: 2 is greater than 1"},
		{"exclusiveMinimum", `{"exclusiveMinimum":1}`, `1`, "exclusiveMinimum: 1 is less than or equal to 1"},
		{"exclusiveMaximum", `{"exclusiveMaximum":1}`, `0.99`, ""},
		{"exclusiveMaximum", `{"exclusiveMaximum":1}`, `1`, "exclusiveMaximum: 1 is greater than or equal to 1"},
		{"bounds skip other types", `{"minimum":5,"minLength":5,"minItems":5,"minProperties":5}`, `true`, ""},
		{"minLength counts code points", `{"minLength":2}`, `"é€"`, ""},
		{"minLength", `{"minLength":2}`, `"é"`, "minLength"},
		{"maxLength", `{"maxLength":1}`, `"ab"`, "maxLength"},
		{"pattern is unanchored", `{"pattern":"[0-9]"}`, `"a1b"`, ""},
		{"pattern", `{"pattern":"^[0-9]+"}`, `"x1"`, `pattern: "x1" does not match`},
		{"prefixItems", `{"prefixItems":[{"type":"integer"},{"type":"string"}]}`, `[1]`, ""},
		{"prefixItems", `{"prefixItems":[{"type":"integer"},{"type":"string"}]}`, `[1,2]`, `has type "integer", want "string"`},
		{"items after prefixItems", `{"prefixItems":[{"type":"string"}],"items":{"type":"integer"}}`, `["a",1,"b"]`, `has type "string", want "integer"`},
		{"items false", `{"prefixItems":[true],"items":false}`, `[1,2]`, "false schema"},
		{"items as a list (legacy) is the server's", `{"items":[{"type":"string"}]}`, `[1]`, ""},
		{"minItems", `{"minItems":1}`, `[]`, "minItems"},
		{"maxItems", `{"maxItems":1}`, `[1,2]`, "maxItems"},
		{"uniqueItems", `{"uniqueItems":true}`, `[1,true,"1",[1]]`, ""},
		{"uniqueItems", `{"uniqueItems":true}`, `[{"a":1},{"a":1.0}]`, "uniqueItems: array items 0 and 1 are equal"},
		{"required", `{"required":["a","b"]}`, `{"a":1}`, `required: missing properties: ["b"]`},
		{"properties", `{"properties":{"a":{"type":"string"}}}`, `{"a":1}`, `validating /properties/p/properties/a: type`},
		{"patternProperties", `{"patternProperties":{"^x":{"type":"integer"}}}`, `{"xa":"s","b":"s"}`, "/patternProperties/^x: type"},
		{"additionalProperties false", `{"properties":{"a":true},"patternProperties":{"^x":true},"additionalProperties":false}`, `{"a":1,"x1":1,"z":1,"y":1}`,
			`unexpected additional properties ["y" "z"]`},
		{"additionalProperties schema", `{"additionalProperties":{"type":"string"}}`, `{"a":1}`, "/additionalProperties: type"},
		{"minProperties", `{"minProperties":1}`, `{}`, "minProperties"},
		{"maxProperties", `{"maxProperties":0}`, `{"a":1}`, "maxProperties"},
		{"allOf", `{"allOf":[{"type":"integer"},{"minimum":2}]}`, `1`, "/allOf/1: minimum"},
		{"anyOf", `{"anyOf":[{"type":"integer"},{"type":"null"}]}`, `null`, ""},
		{"anyOf", `{"anyOf":[{"type":"integer"},{"type":"null"}]}`, `"x"`, "anyOf: did not validate against any of the alternatives"},
		{"oneOf", `{"oneOf":[{"type":"integer"},{"type":"string"}]}`, `1`, ""},
		{"oneOf: two", `{"oneOf":[{"type":"integer"},{"type":"number"}]}`, `1`, "oneOf: validated against 2 of the alternatives"},
		{"oneOf: none", `{"oneOf":[{"type":"integer"}]}`, `"x"`, "oneOf: validated against 0 of the alternatives"},
		{"not", `{"not":{"type":"null"}}`, `1`, ""},
		{"not", `{"not":{"type":"null"}}`, `null`, "not: validated against the schema it must not match"},
		{"if/then", `{"if":{"type":"integer"},"then":{"minimum":5},"else":{"type":"string"}}`, `3`, "/then: minimum"},
		{"if/else", `{"if":{"type":"integer"},"then":{"minimum":5},"else":{"type":"string"}}`, `true`, "/else: type"},
		{"if alone", `{"if":{"type":"integer"}}`, `true`, ""},
		{"$ref", `{"$ref":"#/$defs/Small"}`, `5`, "validating /$defs/Small: maximum"},
		{"$ref with ~ escapes", `{"$ref":"#/$defs/a~1b~0c"}`, `"x"`, "type"},
		{"$ref to the root", `{"type":"object","properties":{"again":{"$ref":"#/properties/p"}}}`, `{"again":{"again":1}}`, "want \"object\""},
		{"$ref siblings apply too (2020-12)", `{"$ref":"#/$defs/Small","minimum":2}`, `1`, "minimum: 1 is less than 2"},
		{"unknown keywords are the server's", `{"format":"uuid","contains":false,"propertyNames":false,"dependentRequired":{"a":["b"]},"x-anything":1}`, `{"a":["x"]}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.keyword, func(t *testing.T) {
			root := decodeJSON(t, `{"properties":{"p":`+tc.schema+`},"$defs":{"Small":{"type":"integer","maximum":3},"a/b~c":{"type":"integer"}}}`).(map[string]any)
			if err := checkKeywords(root, "#", 0); err != nil {
				t.Fatalf("checkKeywords: %v", err)
			}
			err := miniValidate(root, "p", decodeJSON(t, tc.value))
			var unusable *errUnusable
			if errors.As(err, &unusable) {
				t.Fatalf("the schema is unusable: %v", err)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s against %s: %v, want accepted", tc.value, tc.schema, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s against %s: %v, want an error containing %q", tc.value, tc.schema, err, tc.want)
			}
		})
	}
}

// TestMiniSchemaUnusable: a keyword whose value is not of the kind JSON
// Schema requires makes the schema unusable, so the check only warns; it
// never becomes a violation, whatever the values.
func TestMiniSchemaUnusable(t *testing.T) {
	deep := strings.Repeat(`{"not":`, MaxResponseDepth+2) + `{}` + strings.Repeat(`}`, MaxResponseDepth+2)
	wide := `{"type":"array","items":{"anyOf":[{"type":"string"},{"type":"string"},{"type":"string"},{"type":"integer"}]}}`
	tests := []struct {
		name, schema, value, want string
	}{
		{"type a number", `{"type":7}`, `"x"`, "/type is not a type name"},
		{"type an unknown name", `{"type":"int"}`, `"x"`, "/type is not a type name"},
		{"type an empty list", `{"type":[]}`, `"x"`, "/type is not a type name"},
		{"type a repeated name", `{"type":["string","string"]}`, `1`, "/type is not a type name"},
		{"enum not an array", `{"enum":"a"}`, `"b"`, "/enum is not an array"},
		{"minimum a string", `{"minimum":"1"}`, `0`, "/minimum is not a number"},
		{"multipleOf zero", `{"multipleOf":0}`, `1`, "/multipleOf is not a number above 0"},
		{"maxLength a fraction", `{"maxLength":1.5}`, `"abc"`, "/maxLength is not a non-negative integer"},
		{"minItems negative", `{"minItems":-1}`, `[]`, "/minItems is not a non-negative integer"},
		{"pattern a number", `{"pattern":1}`, `"x"`, "/pattern is not a string"},
		{"required a string", `{"required":"a"}`, `{}`, "/required is not an array of strings"},
		{"required with a number", `{"required":["a",1]}`, `{}`, "/required is not an array of strings"},
		{"uniqueItems a string", `{"uniqueItems":"yes"}`, `[1,1]`, "/uniqueItems is not true or false"},
		{"properties an array", `{"properties":[]}`, `{}`, "/properties is not an object of schemas"},
		{"a property that is no schema", `{"properties":{"a":5}}`, `{"a":1}`, "not a schema at #/properties/p/properties/a"},
		{"anyOf empty", `{"anyOf":[]}`, `1`, "/anyOf is not a non-empty array of schemas"},
		{"oneOf an object", `{"oneOf":{"type":"string"}}`, `1`, "/oneOf is not a non-empty array of schemas"},
		{"not a string", `{"not":"x"}`, `1`, "not a schema at #/properties/p/not"},
		{"$ref a number", `{"$ref":1}`, `1`, `reference "1" is not local`},
		{"malformed deep in a definition", `{"$ref":"#/definitions/D"}`, `1`, "#/definitions/D/items/maximum is not a number"},
		{"malformed in a definition nothing refers to", `true`, `1`, "#/definitions/D/items/maximum is not a number"},
		{"a reference into a value", `{"$ref":"#/properties/p/enum/0"}`, `1`, "/enum/0"},
		{"nested past the depth limit", deep, `1`, "too deeply"},
		{"too costly to apply", wide, `[` + strings.TrimSuffix(strings.Repeat(`1,`, 50000), ",") + `]`, "steps to apply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := `{"type":"object","properties":{"p":` + tc.schema + `},"definitions":{"D":{"items":{"maximum":"9"}}}}`
			if !strings.Contains(tc.name, "definition") {
				schema = `{"type":"object","properties":{"p":` + tc.schema + `}}`
			}
			params := map[string]any{"p": decodeJSON(t, tc.value)}
			vs, err := validateParams(schema, params)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validateParams = %+v, %v; want the schema refused with %q", vs, err, tc.want)
			}
			if vs != nil {
				t.Errorf("violations %+v beside an unusable schema", vs)
			}
		})
	}
}

func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// FuzzMiniSchema feeds the parameter check schema and parameter pairs,
// seeded with every case of the differential corpus (its schema with the
// deployment's defaults overlaid by the case's parameters, as the server
// merges them) and with each corpus schema against its own defaults. For
// any input: no panic; violations name only declared or required
// parameters; the same schema with every parameter's own schema replaced by
// {} (which Prefect accepts anything against) leaves only the required and
// hydration violations. Where Prefect's verdict on the pair is known (it is
// in the corpus and some recorded server accepts it), no violation.
func FuzzMiniSchema(f *testing.F) {
	accepted := map[string]bool{} // schema + "\x00" + merged parameters, as encoding/json writes them
	files, _ := filepath.Glob(filepath.Join("testdata", "paramschema-corpus", "*.json"))
	if len(files) == 0 {
		f.Fatal("no corpus files")
	}
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		var cf corpusFile
		if err := json.Unmarshal(raw, &cf); err != nil {
			f.Fatal(err)
		}
		for _, fl := range cf.Flows {
			schema := string(fl.Schema)
			defaults := map[string]any{}
			gjson.Parse(schema).Get("properties").ForEach(func(k, p gjson.Result) bool {
				if d := p.Get("default"); d.Exists() {
					defaults[k.String()] = d.Value()
				}
				return true
			})
			own, _ := json.Marshal(defaults)
			f.Add(schema, string(own))
			for _, c := range fl.Cases {
				params, err := mergedParams(gjson.ParseBytes(c.Defaults), RawObject(c.Parameters))
				if err != nil {
					f.Fatal(err)
				}
				b, _ := json.Marshal(params)
				f.Add(schema, string(b))
				for _, v := range c.Verdicts {
					if v.Accepted {
						accepted[schema+"\x00"+string(b)] = true
					}
				}
			}
		}
	}
	f.Add(`{"type":"object","properties":{"n":{"type":7}}}`, `{"n":1}`)
	f.Add(`{"properties":{"p":{"not":{"oneOf":[{"$ref":"#"},true]}}},"$defs":{"a":{"uniqueItems":true}}}`, `{"p":[[1],[1.0]]}`)
	f.Fuzz(func(t *testing.T, schema, paramsJSON string) {
		var params map[string]any
		if json.Unmarshal([]byte(paramsJSON), &params) != nil || !gjson.Valid(schema) {
			return
		}
		vs, err := validateParams(schema, params)
		if err != nil {
			if strings.HasPrefix(err.Error(), "the validator failed") {
				t.Fatalf("panic on schema %s, parameters %s: %v", schema, paramsJSON, err)
			}
			return
		}
		if !utf8.ValidString(schema) {
			// JSON text is UTF-8 (RFC 8259 section 8.1), and Prefect sends
			// nothing else. On other bytes the validator's decoder writes
			// U+FFFD where gjson keeps the byte, so the names below would
			// not compare; not panicking was all there was to check.
			return
		}
		root := gjson.Parse(schema)
		named := map[string]bool{}
		root.Get("properties").ForEach(func(k, _ gjson.Result) bool { named[k.String()] = true; return true })
		root.Get("required").ForEach(func(_, k gjson.Result) bool { named[k.String()] = true; return true })
		for _, v := range vs {
			if !named[v.param] {
				t.Fatalf("violation %+v names a parameter the schema neither declares nor requires: %s", v, schema)
			}
		}
		if accepted[schema+"\x00"+paramsJSON] && len(vs) > 0 {
			t.Fatalf("FALSE REJECTION of a pair Prefect accepts: %+v\n\tschema %s\n\tparameters %s", vs, schema, paramsJSON)
		}
		// Every parameter's schema replaced by {}: only required and
		// hydration violations may remain.
		var decoded map[string]any
		if json.Unmarshal([]byte(schema), &decoded) != nil {
			return
		}
		props, ok := decoded["properties"].(map[string]any)
		if !ok {
			return
		}
		for k := range props {
			props[k] = map[string]any{}
		}
		open, _ := json.Marshal(decoded)
		vs, err = validateParams(string(open), params)
		if err != nil && strings.HasPrefix(err.Error(), "the validator failed") {
			t.Fatalf("panic on schema %s: %v", open, err)
		}
		for _, v := range vs {
			if !strings.HasPrefix(v.msg, "required") && !strings.HasPrefix(v.msg, "Prefect cannot hydrate") {
				t.Fatalf("violation %+v against {}: %s, parameters %s", v, open, paramsJSON)
			}
		}
	})
}
