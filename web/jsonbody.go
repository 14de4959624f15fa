package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/fleetca/fleetca/internal/fault"
)

// decodeStrict decodes body, one JSON object, into v (a pointer to a
// struct): unknown members are refused, and so is anything after the
// object but white space (RFC 8259 §2: a JSON text is one value), so that
// `{"device_id":"a10"} {"device_id":"a11"}` is an error, not a request for
// a10; so is a member given twice (RFC 8259 §4 leaves its meaning to the
// parser: encoding/json keeps the last, matching names case-insensitively).
// Failures are Malformed faults, with hint.
func decodeStrict(body []byte, v any, hint string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, body, v, hint)
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
		return fault.New(fault.Malformed, fmt.Sprintf("the JSON body has data after its object (at byte %d)", len(body)-len(rest)), hint)
	}
	if name, ok := repeatedMember(body); ok {
		return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the JSON body has the member %q more than once", name), hint), name)
	}
	return nil
}

// repeatedMember returns the first member of the JSON object body whose
// name, compared as encoding/json matches names to fields (ignoring case),
// came before in the object. body has decoded already.
func repeatedMember(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return "", false
		}
		if key := strings.ToLower(name); seen[key] {
			return name, true
		} else {
			seen[key] = true
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return "", false
		}
	}
	return "", false
}

// jsonError turns a failure to decode the JSON request body into v (a
// pointer to a struct) into a Malformed fault that says what was wrong in
// JSON's terms, and that names the member it is about (Field, so the
// problem carries its pointer) where the decoder's error types or v's
// json tags tell which. The decoder's error is wrapped, never copied: its
// text speaks of Go types.
func jsonError(err error, body []byte, v any, hint string) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return fault.Wrap(err, fault.Malformed, "the request body is empty; a JSON object was expected", hint)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Wrap(err, fault.Malformed, "the JSON body ends before its object does", hint)
	case errors.As(err, &syntax):
		return fault.Wrap(err, fault.Malformed, fmt.Sprintf("the JSON body is not valid JSON (at byte %d)", syntax.Offset), hint)
	case errors.As(err, &typ) && typ.Field == "":
		return fault.Wrap(err, fault.Malformed, fmt.Sprintf("the JSON body is %s, not an object", article(typ.Value)), hint)
	case errors.As(err, &typ):
		return fault.WithField(fault.Wrap(err, fault.Malformed,
			fmt.Sprintf("the member %q is %s, not %s", typ.Field, article(typ.Value), jsonKind(typ.Type)), hint), typ.Field)
	}
	if name, ok := unknownMember(body, v); ok {
		return fault.WithField(fault.Wrap(err, fault.Malformed, fmt.Sprintf("the JSON body has the unknown member %q", name), hint), name)
	}
	return fault.Wrap(err, fault.Malformed, "the JSON body cannot be decoded", hint)
}

// unknownMember returns a member of the JSON object body that no
// field of the struct v points to takes, matched as encoding/json matches
// them (the json tag's name, else the field's; case-insensitively).
func unknownMember(body []byte, v any) (string, bool) {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return "", false
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return "", false
	}
	var known []string
	for f := range t.Elem().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		known = append(known, name)
	}
	for m := range members {
		found := false
		for _, k := range known {
			found = found || strings.EqualFold(m, k)
		}
		if !found {
			return m, true
		}
	}
	return "", false
}

// jsonKind names what JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// article puts "a" or "an" before a JSON value's description ("string",
// "number -1", "object").
func article(value string) string {
	if value != "" && strings.ContainsRune("aeiou", rune(value[0])) {
		return "an " + value
	}
	return "a " + value
}
