package dicomweb

import (
	"fmt"
	"strings"
)

// parseMediaType parses a Content-Type or one Accept media range leniently:
// like mime.ParseMediaType, but parameter values may be unquoted even when
// they contain '/' (type=application/dicom, as many DICOMweb clients send),
// parameters may come in any order, and keys are case-insensitive. The
// media type and keys are lower-cased; quoted values are unescaped.
// errors: an empty type, a type without '/', a parameter without '=', a
// duplicate parameter, an unterminated quote.
func parseMediaType(s string) (string, map[string]string, error) {
	fields, err := splitParams(s)
	if err != nil {
		return "", nil, err
	}
	mt := strings.ToLower(strings.TrimSpace(fields[0]))
	if mt == "" || strings.Count(mt, "/") != 1 || strings.ContainsAny(mt, " \t\"") {
		return mt, nil, fmt.Errorf("invalid media type %q", mt)
	}
	params := map[string]string{}
	for _, f := range fields[1:] {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return mt, nil, fmt.Errorf("invalid media type parameter %q", k)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = unescapeQuoted(v[1 : len(v)-1])
		}
		if _, dup := params[k]; dup {
			return mt, nil, fmt.Errorf("duplicate media type parameter %q", k)
		}
		params[k] = v
	}
	return mt, params, nil
}

// splitParams splits on ';' outside double quotes.
func splitParams(s string) ([]string, error) {
	out, closed := splitUnquoted(s, ';')
	if !closed {
		return nil, fmt.Errorf("unterminated quoted string in media type")
	}
	return out, nil
}

// splitUnquoted splits s on sep where sep is outside double quotes
// (backslash escapes inside quotes); closed is false when a quoted string
// is left open.
func splitUnquoted(s string, sep byte) (parts []string, closed bool) {
	start, inQ := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQ {
				i++
			}
		case '"':
			inQ = !inQ
		case sep:
			if !inQ {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:]), !inQ
}

func unescapeQuoted(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// splitAccept splits an Accept header into media ranges (commas outside quotes).
func splitAccept(s string) []string {
	out, _ := splitUnquoted(s, ',')
	return out
}
