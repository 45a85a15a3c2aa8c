package flowrun

import "github.com/tidwall/gjson"

// MaxResponseDepth caps the nesting of any JSON the machine reads from the
// host: a server's response, a checkpoint, the plugin's input.
const MaxResponseDepth = 128

// CheckJSON reports why s is not a JSON document nested at most maxDepth
// deep, or "" when it is. The depth is checked first, without recursion,
// so a hostile document cannot exhaust the stack of the validator.
func CheckJSON(s string, maxDepth int) string {
	depth := 0
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return "nested too deeply"
			}
		case '}', ']':
			depth--
		}
	}
	if !gjson.Valid(s) {
		return "syntax error"
	}
	return ""
}
