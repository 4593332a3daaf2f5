package oapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/omiproject/omi"
)

func TestStatus(t *testing.T) {
	for code, want := range map[string]int{
		"1": 401, "5": 401, "7": 401, "2": 405, "8": 403, "24": 429,
		"4045": 400, "4108": 400, "5023": 400, "5038": 400, "8018": 400, "10005": 400,
		"6003": 409, "9015": 409, "1000": 424, "1018": 424, "10001": 409,
	} {
		if got := Status(&omi.Error{Code: code, Type: "x"}); got != want {
			t.Errorf("code %s: status %d, want %d", code, got, want)
		}
	}
	if got := Status(omi.Internal(nil)); got != 500 {
		t.Errorf("internal: %d", got)
	}
}

func TestCallName(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/ReadImages": "ReadImages", "/api/latest/ReadImages": "ReadImages", "/ReadImages": "ReadImages",
		"/api/v2/ReadImages": "", "/": "", "/api/v1/": "",
	} {
		if got := callName(path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	w := httptest.NewRecorder()
	writeResponse(w, 200, "req-1", struct {
		Image map[string]int `json:"Image"`
	}{map[string]int{"a": 1}}, nil)
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	if got["ResponseContext"].(map[string]any)["RequestId"] != "req-1" || got["Image"] == nil {
		t.Errorf("envelope: %s", w.Body)
	}
	if w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", w.Header().Get("Content-Type"))
	}
	w = httptest.NewRecorder()
	writeResponse(w, 200, "req-2", struct{}{}, nil)
	if w.Body.String() != `{"ResponseContext":{"RequestId":"req-2"}}` {
		t.Errorf("empty payload: %s", w.Body)
	}
	w = httptest.NewRecorder()
	writeResponse(w, http.StatusBadRequest, "req-3", nil, omi.Invalid("4045", "bad %s", "thing"))
	if w.Body.String() != `{"Errors":[{"Code":"4045","Details":"bad thing","Type":"InvalidParameterValue"}],"ResponseContext":{"RequestId":"req-3"}}` {
		t.Errorf("error envelope: %s", w.Body)
	}
}

func TestDecode(t *testing.T) {
	var v struct {
		Base  struct{} `json:"-"`
		Count *int     `json:"Count"`
		Names []string `json:"Names"`
	}
	for body, want := range map[string]string{
		``: "", `null`: "", `{}`: "", `{"Unknown":1}`: "",
		`{"Count":"x"}`: "4108", `{"Names":"x"}`: "4108", `{"Count":`: "4095", `[1]`: "4095", `"x"`: "4095",
	} {
		err := decode([]byte(body), &v)
		got := ""
		if err != nil {
			got = omi.AsError(err).Code
		}
		if got != want {
			t.Errorf("decode %q: code %q, want %q (%v)", body, got, want, err)
		}
	}
}
