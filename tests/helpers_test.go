package tests

import "encoding/json"

// goldenDir holds the state machine's scenarios and golden transcripts.
const goldenDir = "../plugin/flowrun/testdata"

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
