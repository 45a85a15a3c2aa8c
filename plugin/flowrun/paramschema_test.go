package flowrun

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestValidateParams(t *testing.T) {
	const defs = `"definitions":{"Point":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}}`
	const block = `"definitions":{"Creds":{"title":"Creds","type":"object","block_type_slug":"creds","properties":{"user":{"type":"string"}},"required":["user"]}}`
	tests := []struct {
		name    string
		schema  string
		params  string
		want    []string // "param: substring of the message", in order
		wantErr string
	}{
		{"valid", `{"type":"object","properties":{"n":{"type":"integer"}}}`, `{"n":3}`, nil, ""},
		{"integer given as a float with no fraction", `{"type":"object","properties":{"n":{"type":"integer"}}}`, `{"n":3.0}`, nil, ""},
		{"number given as a string", `{"type":"object","properties":{"n":{"type":"number"}}}`, `{"n":"3"}`, []string{`n: has type "string", want "number"`}, ""},
		{"required missing", `{"type":"object","properties":{"a":{},"b":{}},"required":["a","b"]}`, `{"a":1}`, []string{"b: required"}, ""},
		{"nested through a ref", `{"type":"object","properties":{"p":{"$ref":"#/definitions/Point"}},` + defs + `}`, `{"p":{"x":"one"}}`,
			[]string{`p: type: one has type "string", want "integer" at /definitions/Point/properties/x`}, ""},
		{"nested required through a ref", `{"type":"object","properties":{"p":{"$ref":"#/definitions/Point"}},` + defs + `}`, `{"p":{}}`,
			[]string{`p: required: missing properties: ["x"]`}, ""},
		{"$defs and bounds", `{"type":"object","properties":{"n":{"$ref":"#/$defs/Small"}},"$defs":{"Small":{"type":"integer","maximum":3}}}`, `{"n":5}`,
			[]string{"n: is greater than 3"}, ""},
		{"every bad parameter, sorted", `{"type":"object","properties":{"b":{"type":"string"},"a":{"enum":["x"]}}}`, `{"b":1,"a":"y"}`,
			[]string{"a: enum", "b: type"}, ""},
		{"undeclared parameters are left to the unknown-parameter check", `{"type":"object","properties":{},"additionalProperties":false}`, `{"z":1}`, nil, ""},
		{"hydrated values are not checked", `{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`, `{"n":{"__prefect_kind":"json","value":"3"}}`, nil, ""},
		{"an external reference is refused", `{"type":"object","properties":{"n":{"$ref":"https://example.com/s.json"}}}`, `{"n":1}`, nil, "https://example.com/s.json"},
		{"a reference to itself", `{"type":"object","properties":{"n":{"$ref":"#/properties/n"}}}`, `{"n":1}`, nil, "refers to itself"},
		{"a cycle through definitions", `{"type":"object","properties":{"n":{"$ref":"#/definitions/A"}},"definitions":{"A":{"anyOf":[{"$ref":"#/definitions/B"}]},"B":{"allOf":[{"$ref":"#/definitions/A"}]}}}`, `{"n":1}`, nil, "refers to itself"},
		{"a recursive type that descends is fine", `{"type":"object","properties":{"t":{"$ref":"#/definitions/T"}},"definitions":{"T":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/definitions/T"}}}}}}`,
			`{"t":{"kids":[{"kids":[{"kids":"x"}]}]}}`, []string{`t: has type "string", want "array"`}, ""},
		{"an exponential fan-out", `{"type":"object","properties":{"n":{"$ref":"#/definitions/D0"}},"definitions":{` + fanout(20) + `}}`, `{"n":1}`, nil, "branches too widely"},
		{"a reference to nothing", `{"type":"object","properties":{"n":{"$ref":"#/definitions/Nope"}}}`, `{"n":1}`, nil, "points at nothing"},
		{"a block reference, as Prefect's preprocess_schema allows", `{"type":"object","properties":{"b":{"$ref":"#/definitions/Creds"}},"required":["b"],` + block + `}`,
			`{"b":{"$ref":{"block_document_id":"6f1c9a8e-2d7b-4c1e-9f3a-0b5d8e7c6a41"}}}`, nil, ""},
		{"a default holding a block reference is a value, not a reference", `{"type":"object","properties":{"b":{"$ref":"#/definitions/Creds","default":{"$ref":{"block_document_id":"6f1c9a8e-2d7b-4c1e-9f3a-0b5d8e7c6a41"}}}},` + block + `}`,
			`{"b":{"$ref":{"block_document_id":"6f1c9a8e-2d7b-4c1e-9f3a-0b5d8e7c6a41"}}}`, nil, ""},
		{"a block reference by id string", `{"type":"object","properties":{"b":{"$ref":"#/definitions/Creds"}},` + block + `}`,
			`{"b":{"$ref":"6f1c9a8e-2d7b-4c1e-9f3a-0b5d8e7c6a41"}}`, nil, ""},
		{"a block reference that refers to nothing", `{"type":"object","properties":{"b":{"$ref":"#/definitions/Creds"}},` + block + `}`,
			`{"b":{"$ref":{}}}`, []string{"b: matches none of the allowed forms"}, ""},
		{"pydantic 1 Optional (no null in the type) accepts null", `{"type":"object","properties":{"n":{"type":"integer"},"m":{"$ref":"#/definitions/M"}},"definitions":{"M":{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string"}}}}}}`,
			`{"n":null,"m":{"tags":null}}`, nil, ""},
		{"a None default keeps null out", `{"type":"object","properties":{"n":{"type":"integer","default":null}}}`, `{"n":null}`, []string{`n: has type "null", want "integer"`}, ""},
		{"Optional given the wrong type names the type", `{"type":"object","properties":{"n":{"type":"integer"}}}`, `{"n":"x"}`, []string{`n: type: x has type "string", want "integer"`}, ""},
		{"a pydantic 1 tuple", `{"type":"object","properties":{"t":{"type":"array","items":[{"type":"integer"},{"type":"string"}]}}}`, `{"t":[1,2]}`,
			[]string{`t: type: 2 has type "integer", want "string"`}, ""},
		{"placeholders at any depth are hydrated or left to the server", `{"type":"object","properties":{"m":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array","items":{"type":"integer"}}}}}}`,
			`{"m":{"a":{"__prefect_kind":"workspace_variable","variable_name":"v"},"b":[{"__prefect_kind":"json","value":"2"},{"__prefect_kind":"json"}]}}`, nil, ""},
		{"a hydrated json placeholder is checked", `{"type":"object","properties":{"m":{"type":"array","items":{"type":"integer"}}}}`,
			`{"m":[{"__prefect_kind":"none","value":{"__prefect_kind":"json","value":"\"x\""}}]}`, []string{`m: type: x has type "string", want "integer"`}, ""},
		{"a placeholder Prefect cannot hydrate", `{"type":"object","properties":{"m":{"type":"object"}}}`,
			`{"m":{"deep":[{"__prefect_kind":"none"}]}}`, []string{"m: Prefect cannot hydrate its placeholder: Missing 'value' key"}, ""},
		{"a required parameter whose placeholder hydrates to nothing", `{"type":"object","properties":{"n":{}},"required":["n"]}`,
			`{"n":{"__prefect_kind":"workspace_variable"}}`, []string{"n: required, and its placeholder hydrates to nothing"}, ""},
		{"a pattern Python's re reads differently is not checked", `{"type":"object","properties":{"d":{"type":"string","pattern":"^\\d+$"}}}`, `{"d":"12\n"}`, nil, ""},
		{"a portable pattern is checked", `{"type":"object","properties":{"d":{"type":"string","pattern":"^[0-9]+"}}}`, `{"d":"x"}`, []string{"d: pattern"}, ""},
		{"a draft-07 $schema is validated as 2020-12, as Prefect does", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"t":{"type":"array","prefixItems":[{"type":"integer"}]}}}`,
			`{"t":["x"]}`, []string{`t: type: x has type "string", want "integer"`}, ""},
		{"the root's own keywords are the server's", `{"type":"object","minProperties":3,"properties":{"a":{"type":"integer"}}}`, `{"a":1}`, nil, ""},
		{"patternProperties Python's re reads differently are not checked", `{"type":"object","properties":{"m":{"type":"object","patternProperties":{"^\\d+$":{"type":"integer"}},"additionalProperties":false}}}`,
			`{"m":{"\u0661":1}}`, nil, ""},
		{"portable patternProperties are checked", `{"type":"object","properties":{"m":{"type":"object","patternProperties":{"^[0-9]+":{"type":"integer"}},"additionalProperties":false}}}`,
			`{"m":{"1":"x"}}`, []string{`m: type: x has type "string", want "integer"`}, ""},
		{"a number past 2^53 is not checked", `{"type":"object","properties":{"n":{"type":"integer","exclusiveMaximum":9007199254740993}}}`, `{"n":9007199254740992}`, nil, ""},
		{"a schema that is not one", `{"type":"object","properties":{"n":{"type":7}}}`, `{"n":1}`, nil, "/type is not a type name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var params map[string]any
			if err := json.Unmarshal([]byte(tc.params), &params); err != nil {
				t.Fatal(err)
			}
			vs, err := validateParams(tc.schema, params)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if len(vs) != len(tc.want) {
				t.Fatalf("got %d violations %+v, want %d %q", len(vs), vs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				param, msg, _ := strings.Cut(w, ": ")
				if vs[i].param != param || !strings.Contains(vs[i].msg, msg) {
					t.Errorf("violation %d = %+v, want parameter %q with %q", i, vs[i], param, msg)
				}
			}
		})
	}
}

func TestExpectedType(t *testing.T) {
	schema := gjson.Parse(`{"properties":{"i":{"type":"integer"},"u":{"type":["string","null"]},
		"e":{"$ref":"#/definitions/E"},"o":{"$ref":"#/definitions/O"},"a":{"anyOf":[{"type":"array"},{"type":"null"}]},"x":{}},
		"definitions":{"E":{"enum":["a","b"]},"O":{"type":"object"}}}`)
	for name, want := range map[string]string{
		"i": "integer", "u": "string or null", "e": `one of "a", "b"`, "o": "object O", "a": "array or null", "x": "", "missing": "",
	} {
		if got := expectedType(schema, name); got != want {
			t.Errorf("expectedType(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestMergedParamsBeyondFloat64(t *testing.T) {
	if _, err := mergedParams(gjson.Parse(`{}`), `{"n":1e400}`); err == nil {
		t.Error("a number past float64 was merged; want an error, so the check is skipped rather than the parameter lost")
	}
}

func TestMergedParams(t *testing.T) {
	got, err := mergedParams(gjson.Parse(`{"day":"mon","limit":3}`), `{"limit":5,"extra":true}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if want := `{"day":"mon","extra":true,"limit":5}`; string(b) != want {
		t.Errorf("mergedParams = %s, want %s", b, want)
	}
}

// fanout returns definitions D0…Dn where each D(i) is anyOf [D(i+1), D(i+1)]:
// 2^n paths from D0.
func fanout(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		next := fmt.Sprintf(`{"$ref":"#/definitions/D%d"}`, i+1)
		parts = append(parts, fmt.Sprintf(`"D%d":{"anyOf":[%s,%s]}`, i, next, next))
	}
	parts = append(parts, fmt.Sprintf(`"D%d":{"type":"integer"}`, n))
	return strings.Join(parts, ",")
}
