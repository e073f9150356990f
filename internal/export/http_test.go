package export

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/dimse"
)

func do(t *testing.T, h http.Handler, method, path, ctype, body string) (int, map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	raw := w.Body.String()
	var m map[string]any
	_ = json.Unmarshal([]byte(raw), &m)
	return w.Code, m, raw
}

func TestHTTPExport(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	g := startGoSCP(t, dimse.Config{})
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, nil)
	h := NewHandler(e, HandlerOptions{Logger: quietLogger()}).ServeMux()

	code, m, raw := do(t, h, "POST", "/api/v1/exports", "application/json",
		`{"destination":"dest","study_instance_uid":"`+mrStudyUID+`","include_sr":false}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, raw)
	}
	var res Result
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3 || len(res.Outcomes) != 3 || res.Outcomes[0].DIMSEStatus != "0000" || res.Outcomes[0].Status != "sent" || m["destination"] != "dest" {
		t.Fatalf("body %s", raw)
	}
	if len(g.received(t)) != 3 {
		t.Fatal("instances not received")
	}

	cases := []struct {
		name, ctype, body string
		want              int
		msg               string
	}{
		{"unknown destination", "application/json", `{"destination":"nope","study_instance_uid":"1.2.3"}`, 404, "unknown destination"},
		{"study not found", "application/json", `{"destination":"dest","study_instance_uid":"1.2.3.4"}`, 404, "not found"},
		{"instance not found", "", `{"destination":"dest","sop_instance_uids":["1.2.3.4"]}`, 404, "not found"},
		{"malformed JSON", "application/json", `{"destination":`, 400, "malformed"},
		{"unknown field", "application/json", `{"destination":"dest","study":"1.2"}`, 400, "unknown field"},
		{"trailing data", "application/json", `{"destination":"dest","study_instance_uid":"1.2"} {}`, 400, "trailing"},
		{"wrong type", "application/json", `{"destination":"dest","sop_instance_uids":"1.2"}`, 400, "malformed"},
		{"no destination", "application/json", `{"study_instance_uid":"1.2"}`, 400, "destination is required"},
		{"neither", "application/json", `{"destination":"dest"}`, 400, "give a Study"},
		{"both", "application/json", `{"destination":"dest","study_instance_uid":"1.2","sop_instance_uids":["1.3"]}`, 400, "not both"},
		{"bad UID", "application/json", `{"destination":"dest","study_instance_uid":"1.2.abc"}`, 400, "Study Instance UID"},
		{"content type", "text/plain", `{}`, 415, "application/json"},
	}
	for _, c := range cases {
		code, m, raw := do(t, h, "POST", "/api/v1/exports", c.ctype, c.body)
		msg, _ := m["error"].(string)
		if code != c.want || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, raw, c.want, c.msg)
		}
	}
}

func TestHTTPDestinationUnavailable(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	e := newExporter(t, config(t, "127.0.0.1:"+freePort(t), "PACS", false, ""), src, nil)
	h := NewHandler(e, HandlerOptions{Logger: quietLogger()}).ServeMux()
	code, m, raw := do(t, h, "POST", "/api/v1/exports", "application/json", `{"destination":"dest","study_instance_uid":"`+mrStudyUID+`"}`)
	if code != http.StatusBadGateway || !strings.Contains(m["error"].(string), "destination unavailable") {
		t.Fatalf("%d %s", code, raw)
	}
	r, _ := m["result"].(map[string]any)
	if r == nil || r["failed"].(float64) != 3 {
		t.Fatalf("result missing: %s", raw)
	}
}

func TestHTTPDestinations(t *testing.T) {
	secret := secretFile(t)
	cfg, err := ParseConfig(strings.NewReader(`destinations:
  - name: pacs
    ae_title: PACS
    address: pacs.hospital.example:104
    auto: [sr]
  - name: research
    ae_title: RESEARCH
    address: research.example.org:11112
    external: true
    deid: {project_secret_file: "` + secret + `", retain_dates: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newExporter(t, cfg, newSource(t), nil)
	code, _, raw := do(t, NewHandler(e, HandlerOptions{}).ServeMux(), "GET", "/api/v1/destinations", "", "")
	if code != 200 {
		t.Fatalf("%d %s", code, raw)
	}
	var got []DestinationInfo
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "pacs" || got[0].External || len(got[0].Auto) != 1 || got[1].Name != "research" || !got[1].External || got[1].Auto == nil {
		t.Fatalf("destinations %s", raw)
	}
	for _, leak := range []string{"hospital.example", "104", "secret", secret, "0123456789abcdef"} {
		if strings.Contains(raw, leak) {
			t.Errorf("GET /destinations reveals %q: %s", leak, raw)
		}
	}
}

// TestRoutesMountInAPI: the routes convert to api.Route and run behind
// api's Guard with the "export" action.
func TestRoutesMountInAPI(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	e := newExporter(t, config(t, "127.0.0.1:1", "PACS", false, ""), src, nil)
	var routes []api.Route
	for _, r := range NewHandler(e, HandlerOptions{}).Routes() {
		routes = append(routes, api.Route(r))
	}
	guard := &denyGuard{}
	srv, err := api.New(api.Config{Routes: routes, Guard: guard, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	code, _, raw := do(t, srv, "POST", "/api/v1/exports", "application/json", `{"destination":"dest","study_instance_uid":"`+mrStudyUID+`"}`)
	if code != http.StatusForbidden || guard.action != ActionExport || guard.resource != "/api/v1/exports" {
		t.Fatalf("%d %s; guard saw %q %q", code, raw, guard.action, guard.resource)
	}
	code, _, raw = do(t, srv, "GET", "/api/v1/destinations", "", "")
	if code != http.StatusForbidden || guard.action != ActionExport {
		t.Fatalf("%d %s", code, raw)
	}
}

type denyGuard struct{ action, resource string }

func (g *denyGuard) Authorize(_ *http.Request, action, resource string) (api.Principal, error) {
	g.action, g.resource = action, resource
	return api.Principal{}, api.ErrForbidden
}
