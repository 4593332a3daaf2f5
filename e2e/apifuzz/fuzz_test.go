package apifuzz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/omiproject/omi"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	_ "modernc.org/sqlite" // read the test server's store directly, read-only

	"github.com/omiproject/omi/apitest"
)

// The seed and the number of mutated requests per call are fixed, so a
// failure reproduces; raise -apifuzz.n for a longer local run, change
// -apifuzz.seed to explore.
var (
	seed    = flag.Uint64("apifuzz.seed", 13, "seed of the request fuzzer")
	perCall = flag.Int("apifuzz.n", 36, "mutated requests per call")
)

// unmodelled lists the calls whose requests have spec fields the server
// does not implement yet (VM networking: Nics, placement, subnets): those
// fields are ignored whatever their type, like unknown ones, so a wrong
// type there is not refused.
var unmodelled = map[string]bool{"CreateVms": true, "ReadVms": true, "ReadVmsState": true, "UpdateVm": true}

// expectation is what a mutated request must get beyond the checks every
// response gets (no 5xx, a Code on every 4xx, nothing changed by a
// refusal).
type expectation int

const (
	anyAnswer     expectation = iota
	badInput                  // 400 with 4095 or 4108: the body cannot be decoded
	refused                   // anything but 200: another account's resource
	badInputMaybe             // badInput unless the call ignores the field (unmodelled)
)

// request is one fuzzed request: a JSON body or raw bytes.
type request struct {
	what   string
	body   any
	raw    []byte
	expect expectation
	// paths are the properties a mutation changed, when it matters to the
	// expectation: an ignored (unmodelled) property cannot refuse.
	paths []string
}

func (r request) bytes() []byte {
	if r.raw != nil {
		return r.raw
	}
	b, err := json.Marshal(r.body)
	if err != nil {
		panic(err)
	}
	return b
}

// fixtures are real resources of one account, by the property names that
// take them, and the values another account must never see.
type fixtures struct {
	ids     map[string]any
	private []string
}

type fuzzer struct {
	t     *testing.T
	e     *apitest.Env
	db    *sql.DB
	state map[string]string // store fingerprint after the last request
	sent  int
	codes map[int]int
	titi  fixtures
	// ignored holds the call/property pairs the server ignores: a wrong
	// type there was accepted (unmodelled fields).
	ignored map[string]bool
}

// TestSpecDrivenFuzz is the request fuzzer; see the package comment.
func TestSpecDrivenFuzz(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	e := apitest.Start(t)
	st := e.Store
	if w, ok := st.(interface{ Unwrap() omi.Store }); ok {
		st = w.Unwrap() // the record cache in front of the SQLite store
	}
	pather, ok := st.(interface{ Path() string })
	if !ok {
		t.Fatalf("apitest's store %T has no Path: cannot compare it before and after refused calls", st)
	}
	db, err := sql.Open("sqlite", "file:"+pather.Path()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := &fuzzer{t: t, e: e, db: db, codes: map[int]int{}, ignored: map[string]bool{}}

	f.titi = f.fixtures(e.Titi, "titi", false)
	titiBefore := f.fingerprint(e.Titi.AccountID)

	calls := e.Server.Calls()
	sort.Strings(calls)
	if len(calls) < 40 {
		t.Fatalf("server routes %d calls", len(calls))
	}
	start := time.Now()
	for _, call := range calls {
		f.fuzzCall(spec, call)
		if t.Failed() && f.sent > 200 {
			// Keep the report readable: later calls would mostly repeat
			// the same failure.
			t.Logf("stopping after %s: failures above", call)
			break
		}
	}

	// The other account's resources are as they were, and the server
	// still answers.
	f.settle()
	if after := f.fingerprint(e.Titi.AccountID); !equalMaps(titiBefore, after) {
		t.Errorf("titi's resources changed during the fuzz:\n%s", diff(titiBefore, after))
	}
	f.alive("end")
	t.Logf("%d calls, %d requests in %s; statuses %v", len(calls), f.sent, time.Since(start).Round(time.Millisecond), f.codes)
}

func (f *fuzzer) fuzzCall(spec *apitest.Spec, call string) {
	t, e := f.t, f.e
	schema := requestSchema(spec, call)
	h := fnv.New64a()
	h.Write([]byte(call))
	r := rand.New(rand.NewPCG(*seed, h.Sum64()))
	fx := f.fixtures(e.Joe, "joe-"+strings.ToLower(call), strings.Contains(call, "AccessKey"))
	if strings.HasPrefix(call, "Create") {
		// A call that creates a named resource needs a new name; the
		// fixture's would only ever conflict.
		delete(fx.ids, "KeypairName")
	}
	g := &gen{r: r, ids: fx.ids}
	f.settle()
	f.state = f.fingerprint("")

	paths, schemas := leaves(schema)
	isRead := strings.HasPrefix(call, "Read") || strings.HasPrefix(call, "Check")
	reqs := []request{{what: "generated", body: g.body(schema, true)}, {what: "generated", body: g.body(schema, false)}}
	// Every property, and those of objects one level down, with a value
	// of the wrong type: the decoder must refuse each.
	for _, p := range paths {
		if v, ok := wrongType(schemas[p.String()]); ok {
			exp := badInput
			if unmodelled[call] {
				exp = badInputMaybe
			}
			reqs = append(reqs, request{what: "wrong type at " + p.String(), body: set(g.body(schema, true), p, v), expect: exp, paths: []string{p.String()}})
		}
	}
	// Then random mutations of generated requests.
	for i, n := 0, len(reqs)+*perCall; len(reqs) < n; i++ {
		base := g.body(schema, i%2 == 0)
		var p path
		var ps *openapi3.Schema
		if len(paths) > 0 {
			p = paths[r.IntN(len(paths))]
			ps = schemas[p.String()]
		}
		switch i % 12 {
		case 0: // a valid request, as generated
			reqs = append(reqs, request{what: "generated", body: base})
		case 1: // null
			if p != nil {
				reqs = append(reqs, request{what: "null at " + p.String(), body: set(base, p, nil)})
			}
		case 2: // odd and huge strings
			if p != nil {
				v := any(oddStrings[r.IntN(len(oddStrings))])
				if r.IntN(4) == 0 {
					v = hugeString
				}
				if typeOf(ps) == "array" {
					v = []any{v}
				}
				reqs = append(reqs, request{what: "odd string at " + p.String(), body: set(base, p, v)})
			}
		case 3: // unknown enum value, or odd numbers
			switch {
			case ps != nil && len(ps.Enum) > 0:
				reqs = append(reqs, request{what: "unknown enum at " + p.String(), body: set(base, p, "not-a-"+strings.ToLower(p[len(p)-1]))})
			case ps != nil && (typeOf(ps) == "integer" || typeOf(ps) == "number"):
				reqs = append(reqs, request{what: "odd number at " + p.String(), body: set(base, p, oddNumbers[r.IntN(len(oddNumbers))])})
			case p != nil:
				reqs = append(reqs, request{what: "huge array at " + p.String(), body: set(base, p, hugeArray())})
			}
		case 4: // deep JSON
			if p != nil {
				raw := fmt.Sprintf(`{%q:%s}`, p[0], deep(20000, "1"))
				reqs = append(reqs, request{what: "20000-deep JSON at " + p[0], raw: []byte(raw), expect: badInput})
				nested := any("x")
				for j := 0; j < 200; j++ {
					nested = map[string]any{"x": nested}
				}
				reqs = append(reqs, request{what: "200-deep objects at " + p.String(), body: set(base, p, nested)})
			}
		case 5: // truncated JSON
			b, _ := json.Marshal(base)
			if len(b) > 2 {
				cut := b[:1+r.IntN(len(b)-2)]
				exp := badInput
				if json.Valid(cut) {
					exp = anyAnswer
				}
				reqs = append(reqs, request{what: fmt.Sprintf("truncated at %d/%d", len(cut), len(b)), raw: cut, expect: exp})
			}
		case 6, 7: // another account's resources, in every id field they fit
			body, names := f.foreign(base, schema, r)
			if len(names) > 0 {
				exp := refused
				if isRead {
					exp = anyAnswer // the leak check applies
				}
				reqs = append(reqs, request{what: "titi's ids in " + strings.Join(names, ","), body: body, expect: exp, paths: names})
			}
		case 8: // malformed and unknown ids
			if p != nil {
				ids := []string{"vol-00000000", "snap-ffffffff", "ami-12345678", "i-00000000", "sg-00000000", "eipalloc-00000000", "vol-", "ami-1", "x-12345678", "AKIA0000000000000000"}
				v := any(ids[r.IntN(len(ids))])
				if typeOf(ps) == "array" {
					v = []any{v}
				}
				reqs = append(reqs, request{what: "unknown id at " + p.String(), body: set(base, p, v)})
			}
		case 9: // bodies that are not objects, or too big
			bad := [][]byte{[]byte(`[]`), []byte(`"x"`), []byte(`1`), []byte(`true`), []byte(`{"a":1}{`), []byte("\x00\x01\x02"), []byte(`{"` + strings.Repeat("k", 1<<20) + `":1}`)}
			reqs = append(reqs, request{what: "not an object", raw: bad[r.IntN(len(bad))], expect: badInput})
		case 10: // invalid UTF-8 inside a string
			if p != nil {
				b, _ := json.Marshal(set(base, p, "MARK"))
				raw := bytes.Replace(b, []byte(`"MARK"`), []byte("\"\xff\xfe\xc3(\""), 1)
				reqs = append(reqs, request{what: "invalid UTF-8 at " + p.String(), raw: raw})
			}
		case 11: // unknown fields beside valid ones
			reqs = append(reqs, request{what: "unknown fields", body: set(base, path{"NoSuchField"}, map[string]any{"x": []any{1, nil}})})
		}
	}
	accepted := 0
	for _, req := range reqs {
		if f.send(call, isRead, req) == 200 {
			accepted++
		}
	}
	t.Logf("%s: %d requests, %d accepted", call, len(reqs), accepted)
}

// foreign puts titi's ids into every property of base that takes a
// resource id titi has (top level and one object down).
func (f *fuzzer) foreign(base map[string]any, s *openapi3.Schema, r *rand.Rand) (map[string]any, []string) {
	out := clone(base).(map[string]any)
	var names []string
	if s == nil {
		return out, nil
	}
	paths, _ := leaves(s)
	for _, p := range paths {
		name := p[len(p)-1]
		v, ok := f.titi.ids[name]
		if !ok || !isIDField(name) {
			continue
		}
		if r.IntN(3) == 0 && len(names) > 0 {
			continue
		}
		out = set(out, p, v)
		names = append(names, p.String())
	}
	return out, names
}

// isIDField says whether a property names resources by id (names of
// keypairs and security groups are per account, so another account may
// use the same).
func isIDField(name string) bool {
	return strings.HasSuffix(name, "Id") || strings.HasSuffix(name, "Ids") || name == "PublicIp" || name == "PublicIps"
}

func hugeArray() []any {
	out := make([]any, 10000)
	for i := range out {
		out[i] = fmt.Sprintf("x-%d", i)
	}
	return out
}

// send sends one request as joe, checks the answer and returns its status.
func (f *fuzzer) send(call string, isRead bool, req request) int {
	t, e := f.t, f.e
	t.Helper()
	body := req.bytes()
	httpReq, err := e.NewRequest(apitest.Request{Call: call, Body: body, Account: &e.Joe})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := e.HTTPClient().Do(httpReq.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v (server hung or died)", call, req.what, err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read: %v", call, req.what, err)
	}
	f.sent++
	f.codes[resp.StatusCode]++
	shown := string(body)
	if len(shown) > 300 {
		shown = shown[:300] + "..."
	}
	fail := func(format string, args ...any) {
		t.Errorf("%s with %s: %s\n  request: %s\n  response: %d %.400s", call, req.what, fmt.Sprintf(format, args...), shown, resp.StatusCode, out)
	}

	var env struct {
		Errors []struct{ Code, Type string }
	}
	if err := json.Unmarshal(out, &env); err != nil {
		fail("the answer is not JSON: %v", err)
	}
	switch st := resp.StatusCode; {
	case st >= 500:
		fail("server error")
	case st >= 400 && (len(env.Errors) == 0 || env.Errors[0].Code == ""):
		fail("an error without a Code")
	case st != 200 && st < 400:
		fail("unexpected status")
	}
	code := ""
	if len(env.Errors) > 0 {
		code = env.Errors[0].Code
	}
	switch req.expect {
	case badInput:
		if resp.StatusCode != 400 || (code != "4095" && code != "4108") {
			fail("want 400 with 4095 or 4108")
		}
	case badInputMaybe:
		if resp.StatusCode == 200 {
			t.Logf("%s ignores %s (unmodelled field)", call, req.what)
			for _, p := range req.paths {
				f.ignored[call+"/"+p] = true
			}
		}
	case refused:
		ignored := len(req.paths) > 0
		for _, p := range req.paths {
			ignored = ignored && f.ignored[call+"/"+p]
		}
		if resp.StatusCode == 200 && !ignored {
			fail("another account's resource was accepted")
		}
	}
	if resp.StatusCode == 200 {
		for _, id := range f.titi.private {
			if bytes.Contains(out, []byte(`"`+id+`"`)) {
				fail("the answer shows titi's private %s", id)
			}
		}
	}

	// Nothing may change in the store when a call is refused.
	f.settle()
	after := f.fingerprint("")
	if resp.StatusCode != 200 && !equalMaps(f.state, after) {
		fail("a refused call changed the store:\n%s", diff(f.state, after))
	}
	f.state = after
	if f.sent%250 == 0 {
		f.alive(fmt.Sprintf("after %d requests", f.sent))
	}
	return resp.StatusCode
}

// alive checks the server still answers a plain call.
func (f *fuzzer) alive(when string) {
	if r := f.e.Call(f.t, f.e.Joe, "ReadAccounts", map[string]any{}); r.Status != 200 {
		f.t.Fatalf("server not answering %s: %s", when, r)
	}
}

// settle waits until background transitions queued by the last request
// are done, so that the store can be compared.
func (f *fuzzer) settle() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.e.Service.Settle(ctx); err != nil {
		f.t.Fatalf("settle: %v", err)
	}
}

// fingerprint returns every record of the store (of owner, when not
// empty) with a hash of its document, visibility and shares.
func (f *fuzzer) fingerprint(owner string) map[string]string {
	q := `SELECT r.kind, r.id, r.owner, r.public, r.doc, COALESCE((SELECT group_concat(account, ',') FROM shares s WHERE s.kind = r.kind AND s.id = r.id), '')
	      FROM records r`
	var args []any
	if owner != "" {
		q += ` WHERE r.owner = ?`
		args = append(args, owner)
	}
	rows, err := f.db.Query(q, args...)
	if err != nil {
		f.t.Fatalf("fingerprint: %v", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var kind, id, own, shares string
		var public int
		var doc []byte
		if err := rows.Scan(&kind, &id, &own, &public, &doc, &shares); err != nil {
			f.t.Fatalf("fingerprint: %v", err)
		}
		sum := sha256.Sum256(doc)
		out[kind+"/"+id] = fmt.Sprintf("owner=%s public=%d shares=%s doc=%s", own, public, shares, hex.EncodeToString(sum[:6]))
	}
	if err := rows.Err(); err != nil {
		f.t.Fatalf("fingerprint: %v", err)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diff(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, "  gone: "+k)
		} else if w != v {
			out = append(out, fmt.Sprintf("  changed: %s %s -> %s", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "  new: "+k)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// requestSchema returns the JSON request schema the spec gives for call,
// or nil for omi's extensions.
func requestSchema(spec *apitest.Spec, call string) *openapi3.Schema {
	item := spec.Doc.Paths.Find("/" + call)
	if item == nil || item.Post == nil || item.Post.RequestBody == nil || item.Post.RequestBody.Value == nil {
		return nil
	}
	mt := item.Post.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// fixtures creates one of each resource the calls take as a, and waits
// for them to settle. withKey adds a second access key (for the access
// key calls, which must not touch the key the fuzzer signs with).
func (f *fuzzer) fixtures(a apitest.Account, tag string, withKey bool) fixtures {
	t, e := f.t, f.e
	t.Helper()
	var vol struct{ Volume struct{ VolumeId string } }
	e.MustCall(t, a, "CreateVolume", map[string]any{"SubregionName": apitest.Region + "a", "Size": 1}, &vol)
	f.settle()
	var snap struct{ Snapshot struct{ SnapshotId string } }
	e.MustCall(t, a, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap)
	f.settle()
	var img struct{ Image struct{ ImageId string } }
	e.MustCall(t, a, "CreateImage", map[string]any{"ImageName": "fuzz-" + tag, "RootDeviceName": "/dev/sda1",
		"BlockDeviceMappings": []any{map[string]any{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap.Snapshot.SnapshotId, "VolumeType": "standard"}}}}, &img)
	f.settle()
	var kp struct{ Keypair struct{ KeypairName string } }
	e.MustCall(t, a, "CreateKeypair", map[string]any{"KeypairName": "fuzz-" + tag}, &kp)
	var sg struct {
		SecurityGroup struct{ SecurityGroupId string }
	}
	e.MustCall(t, a, "CreateSecurityGroup", map[string]any{"SecurityGroupName": "fuzz-" + tag, "Description": "fuzz"}, &sg)
	var ip struct {
		PublicIp struct{ PublicIp, PublicIpId string }
	}
	if r := e.Call(t, a, "CreatePublicIp", map[string]any{}); r.Status == 200 {
		r.Decode(&ip)
	} else {
		// The fuzz of CreatePublicIp may have used the account's quota
		// up (long runs): reuse one of its addresses.
		var ips struct {
			PublicIps []struct{ PublicIp, PublicIpId string }
		}
		e.MustCall(t, a, "ReadPublicIps", map[string]any{}, &ips)
		if len(ips.PublicIps) == 0 {
			t.Fatalf("CreatePublicIp as %s: %s, and no address to reuse", a.Alias, r)
		}
		ip.PublicIp.PublicIp, ip.PublicIp.PublicIpId = ips.PublicIps[0].PublicIp, ips.PublicIps[0].PublicIpId
	}
	var vms struct{ Vms []struct{ VmId string } }
	e.MustCall(t, a, "CreateVms", map[string]any{"ImageId": img.Image.ImageId}, &vms)
	f.settle()
	if len(vms.Vms) != 1 {
		t.Fatalf("CreateVms made %d VMs", len(vms.Vms))
	}
	v, s, i, vm, g, p := vol.Volume.VolumeId, snap.Snapshot.SnapshotId, img.Image.ImageId, vms.Vms[0].VmId, sg.SecurityGroup.SecurityGroupId, ip.PublicIp
	// A load balancer with the VM behind it: load balancers are named,
	// not identified, so the fuzzer reaches them by LoadBalancerName.
	// (32 characters at most: the tag's hash stands for it.)
	h := fnv.New32a()
	h.Write([]byte(tag))
	lb := fmt.Sprintf("fuzz-lb-%08x", h.Sum32())
	if r := e.Call(t, a, "CreateLoadBalancer", map[string]any{"LoadBalancerName": lb, "SubregionNames": []any{apitest.Region + "a"},
		"Listeners": []any{map[string]any{"LoadBalancerPort": 80, "LoadBalancerProtocol": "HTTP", "BackendPort": 8080, "BackendProtocol": "HTTP"}}}); r.Status != 200 {
		// The account may hold its 20 load balancers already (one per
		// fuzzed call): reuse one.
		var lbs struct {
			LoadBalancers []struct{ LoadBalancerName string }
		}
		e.MustCall(t, a, "ReadLoadBalancers", map[string]any{}, &lbs)
		if len(lbs.LoadBalancers) == 0 {
			t.Fatalf("CreateLoadBalancer as %s: %s, and no load balancer to reuse", a.Alias, r)
		}
		lb = lbs.LoadBalancers[0].LoadBalancerName
	}
	e.MustCall(t, a, "RegisterVmsInLoadBalancer", map[string]any{"LoadBalancerName": lb, "BackendVmIds": []any{vms.Vms[0].VmId}}, nil)
	ids := map[string]any{
		"VolumeId": v, "VolumeIds": []any{v}, "SnapshotId": s, "SnapshotIds": []any{s}, "SourceSnapshotId": s,
		"ImageId": i, "ImageIds": []any{i}, "SourceImageId": i, "VmId": vm, "VmIds": []any{vm},
		"KeypairName": kp.Keypair.KeypairName, "KeypairNames": []any{kp.Keypair.KeypairName},
		"SecurityGroupId": g, "SecurityGroupIds": []any{g}, "PublicIp": p.PublicIp, "PublicIps": []any{p.PublicIp},
		"PublicIpId": p.PublicIpId, "PublicIpIds": []any{p.PublicIpId}, "ResourceIds": []any{v, i},
		"SubregionName": apitest.Region + "a", "SubregionNames": []any{apitest.Region + "a"}, "Login": a.Email,
		"LoadBalancerName": lb, "LoadBalancerNames": []any{lb}, "BackendVmIds": []any{vm},
	}
	if withKey {
		// Make room under the limit of 10 keys: drop every key but the
		// one the fuzzer signs with.
		var keys struct {
			AccessKeys []struct{ AccessKeyId string }
		}
		e.MustCall(t, a, "ReadAccessKeys", map[string]any{}, &keys)
		for _, k := range keys.AccessKeys {
			if k.AccessKeyId != a.AccessKey {
				e.MustCall(t, a, "DeleteAccessKey", map[string]any{"AccessKeyId": k.AccessKeyId}, nil)
			}
		}
		var key struct{ AccessKey struct{ AccessKeyId string } }
		e.MustCall(t, a, "CreateAccessKey", map[string]any{}, &key)
		ids["AccessKeyId"], ids["AccessKeyIds"] = key.AccessKey.AccessKeyId, []any{key.AccessKey.AccessKeyId}
	}
	return fixtures{ids: ids, private: []string{v, s, i, vm, g, p.PublicIpId, p.PublicIp, kp.Keypair.KeypairName, lb}}
}
