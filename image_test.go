package omi_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/omiproject/omi"
)

// fill sets every field reachable from v (a pointer) to a non-zero value,
// with one element in each slice and every pointer set, so that a field
// added to Image later is covered by TestImageClone without editing it.
func fill(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), n)
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	default:
		t.Fatalf("fill: %s not handled", v.Type())
	}
}

// shared reports the first pointer or slice array reachable from both a
// and b (values of the same type).
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if a.Len() == 0 || b.Len() == 0 {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		for i := range a.Len() {
			if p := shared(a.Index(i), b.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// A clone equals its original and shares no memory with it, whatever
// fields Image has.
func TestImageClone(t *testing.T) {
	img := &omi.Image{}
	n := 0
	fill(t, reflect.ValueOf(img).Elem(), &n)
	c := img.Clone()
	if !reflect.DeepEqual(img, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", img, c)
	}
	if p := shared(reflect.ValueOf(img), reflect.ValueOf(c), "Image"); p != "" {
		t.Fatalf("the clone shares %s with the original", p)
	}
	// nil slices stay nil: the stored form tells them from empty ones.
	a, _ := json.Marshal((&omi.Image{}).Clone())
	b, _ := json.Marshal(&omi.Image{})
	if string(a) != string(b) {
		t.Fatalf("clone of an empty image: %s, want %s", a, b)
	}
}
