package realclients

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omiproject/omi/apitest"
)

// TestProviderQA runs the recorded-state QA cases of
// terraform-provider-outscale (the tests/data/oapi folder of its
// repository: terraform configurations applied step by step against the
// real cloud, each step's state saved as a .ref file with ids masked)
// against omi with the real terraform and provider, and compares each
// step's state with its .ref the way that project's QA does: ids and
// per-run values masked, lists compared as sets, an id of the output free
// to stand for any one id of the reference.
//
// Nothing of that repository is kept in omi: OMI_PROVIDER_TESTS names a
// folder where it was extracted (tests/data/oapi), OMI_PROVIDER_CASES an
// optional regular expression on "resource/case" (default: the resources
// omi serves), OMI_PROVIDER_QA_OUT an optional folder where each step's
// masked state and differences are written. docs/provider-qa.md lists the
// results and the differences that come from the recording account.
func TestProviderQA(t *testing.T) {
	root := os.Getenv("OMI_PROVIDER_TESTS")
	if root == "" {
		t.Skip("OMI_PROVIDER_TESTS=<extracted tests/data/oapi of terraform-provider-outscale> runs its recorded-state QA cases")
	}
	pattern := os.Getenv("OMI_PROVIDER_CASES")
	if pattern == "" {
		pattern = defaultQAResources
	}
	re := regexp.MustCompile(pattern)
	cases := qaCases(t, root, re)
	if len(cases) == 0 {
		t.Fatalf("no case of %s matches %s", root, pattern)
	}
	outDir := os.Getenv("OMI_PROVIDER_QA_OUT")
	// The deployment the QA was recorded on: ReadRegions lists the real
	// cloud's regions. Most cases were recorded in eu-west-2, some in
	// us-east-2: each runs against an omi serving its region.
	servers := map[string]*server{}
	pools := map[string]chan qaAccount{}
	for _, region := range []string{"eu-west-2", "us-east-2"} {
		s := startServerWith(t, qaConfig(t, region))
		servers[region] = s
		pools[region] = make(chan qaAccount, qaAccounts)
		for i := 0; i < qaAccounts; i++ {
			a := qaAccountN(i)
			s.MustCall(t, a, "CreateKeypair", map[string]any{"KeypairName": "terraform-basic"}, nil)
			img := s.qaImage(t, a, region)
			pools[region] <- qaAccount{Account: a, vars: map[string]string{
				"image_id": img,
				// The real cloud's UEFI OMI with a vTPM the cases copy.
				"image_id_uefi_tpm": img,
				"region":            region,
				"account_id":        a.AccountID,
				"osu_bucket_name":   qaMaskedVars["osu_bucket_name"],
				"vm_type":           qaMaskedVars["vm_type"],
			}}
		}
	}
	var mu sync.Mutex
	results := map[string]string{}
	t.Cleanup(func() {
		names := make([]string, 0, len(results))
		for n := range results {
			names = append(names, n)
		}
		sort.Strings(names)
		pass := 0
		var b strings.Builder
		for _, n := range names {
			if results[n] == "ok" {
				pass++
			}
			fmt.Fprintf(&b, "%s\t%s\n", n, results[n])
		}
		t.Logf("provider QA: %d/%d cases match\n%s", pass, len(names), b.String())
		if outDir != "" {
			_ = os.WriteFile(filepath.Join(outDir, "summary.txt"), []byte(fmt.Sprintf("%d/%d\n%s", pass, len(names), b.String())), 0o644)
		}
	})
	skips := qaSkips(root)
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			if skips["test_"+strings.Replace(c, "/", "_", 1)] {
				t.Skip("listed in the QA's tests_to_fix.json: that QA skips it too")
			}
			region := qaRegion(t, filepath.Join(root, c))
			// Each case runs as an account of its own at a time: the
			// cases use fixed names and broad filters, as on the one
			// account the QA runs them on one after the other.
			a := <-pools[region]
			defer func() { pools[region] <- a }()
			res := servers[region].runQACase(t, filepath.Join(root, c), a, outDir, c)
			mu.Lock()
			results[c] = res
			mu.Unlock()
		})
	}
}

// qaSkips reads the QA's own list of cases it skips (tests_to_fix.json
// beside data/oapi), as test_<resource>_<case> names.
func qaSkips(root string) map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(root, "..", "..", "tests_to_fix.json"))
	if err != nil {
		return out
	}
	var names []string
	if json.Unmarshal(b, &names) == nil {
		for _, n := range names {
			out[n] = true
		}
	}
	return out
}

// qaAccounts is how many cases run at once, each as its own account.
const qaAccounts = 4

// qaAccount is an account of the pool with the variables its cases get.
type qaAccount struct {
	apitest.Account
	vars map[string]string
}

// qaAccountN is the i-th account of the pool, added to the example
// accounts of omi's configuration.
func qaAccountN(i int) apitest.Account {
	// No alias: the recording account has none (its OMIs and snapshots
	// show an empty account_alias).
	return apitest.Account{AccountID: fmt.Sprintf("9000000000%02d", i),
		Email: fmt.Sprintf("qa%d@example.com", i), Password: fmt.Sprintf("qa-password-%d-1234", i),
		AccessKey: fmt.Sprintf("QAQAQAQAQAQAQAQAQA%02d", i), SecretKey: fmt.Sprintf("qa%038d", i)}
}

// qaConfig writes omi's configuration for one region: the example
// accounts, and the real cloud's regions for ReadRegions.
func qaConfig(t *testing.T, region string) string {
	accounts, err := os.ReadFile(apitest.ExampleAccountsFile())
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?m)^region: .*$`).ReplaceAllString(string(accounts), "region: "+region)
	var qa strings.Builder
	for i := 0; i < qaAccounts; i++ {
		a := qaAccountN(i)
		fmt.Fprintf(&qa, "  - account_id: %q\n    email: %s\n    password: %s\n    access_keys:\n      - access_key_id: %q\n        secret_key: %q\n",
			a.AccountID, a.Email, a.Password, a.AccessKey, a.SecretKey)
	}
	body = strings.Replace(body, "\naccounts:\n", "\naccounts:\n"+qa.String(), 1)
	body += "\nregions:\n" +
		"  - {name: eu-west-2, endpoint: api.eu-west-2.outscale.com}\n" +
		"  - {name: us-east-2, endpoint: api.us-east-2.outscale.com}\n" +
		"  - {name: us-west-1, endpoint: api.us-west-1.outscale.com}\n" +
		// The harness signs as eu-west-2 whichever region is served.
		"signature:\n  regions: [" + region + ", eu-west-2]\n"
	path := filepath.Join(t.TempDir(), "omi-"+region+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// qaRegion is the region a case was recorded in: us-east-2 where its
// references name it, eu-west-2 otherwise.
func qaRegion(t *testing.T, caseDir string) string {
	refs, _ := filepath.Glob(filepath.Join(caseDir, "*.ref"))
	for _, r := range refs {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		// A subregion ("us-east-2a") or a service name
		// ("com.outscale.us-east-2.api") of the region.
		if strings.Contains(string(b), `"us-east-2`) || strings.Contains(string(b), `.us-east-2.`) {
			return "us-east-2"
		}
	}
	return "eu-west-2"
}

// qaImage registers the OMI the cases boot (var.image_id): like the
// official OMI the recording account used, a 10 GiB root snapshot, UEFI
// boot only and product code 0001. omi's own official OMIs are smaller
// and boot both ways, a difference of catalogue, not of the API.
func (s *server) qaImage(t *testing.T, a apitest.Account, region string) string {
	var vol struct{ Volume struct{ VolumeId string } }
	s.MustCall(t, a, "CreateVolume", map[string]any{"Size": 10, "SubregionName": region + "a"}, &vol)
	apitest.WaitFor(t, time.Minute, "the QA image's volume", func() (bool, error) {
		var r struct{ Volumes []struct{ State string } }
		s.MustCall(t, a, "ReadVolumes", map[string]any{"Filters": map[string]any{"VolumeIds": []string{vol.Volume.VolumeId}}}, &r)
		return len(r.Volumes) == 1 && r.Volumes[0].State == "available", nil
	})
	var snap struct{ Snapshot struct{ SnapshotId string } }
	s.MustCall(t, a, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap)
	apitest.WaitFor(t, time.Minute, "the QA image's snapshot", func() (bool, error) {
		var r struct{ Snapshots []struct{ State string } }
		s.MustCall(t, a, "ReadSnapshots", map[string]any{"Filters": map[string]any{"SnapshotIds": []string{snap.Snapshot.SnapshotId}}}, &r)
		return len(r.Snapshots) == 1 && r.Snapshots[0].State == "completed", nil
	})
	var img struct{ Image struct{ ImageId string } }
	s.MustCall(t, a, "CreateImage", map[string]any{"ImageName": "qa-ubuntu", "RootDeviceName": "/dev/sda1",
		"BootModes": []string{"uefi"}, "ProductCodes": []string{"0001"},
		"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap.Snapshot.SnapshotId, "VolumeSize": 10, "VolumeType": "standard", "DeleteOnVmDeletion": true}}}}, &img)
	s.MustCall(t, a, "DeleteVolume", map[string]any{"VolumeId": vol.Volume.VolumeId}, nil)
	return img.Image.ImageId
}

// defaultQAResources are the QA resources whose calls omi serves (not
// VPN, certificates, flexible GPUs, IAM or OKS).
const defaultQAResources = `^(access_keys?|dhcp_options?|images?|image_launch_permission|internet_services?|keypairs?|load_balancer(_attributes|_listener_rules?|_policy|_tags|_vm_health|_vms)?|net_access_point_services|nets|public_ips?|public_ip_link|quotas?|regions|security_groups?|security_group_rule|server_certificates?|snapshots?|snapshot_attributes|snapshot_copy|subregions|virtual_gateways?|vms?|vm_states?|vm_types|volumes?|volumes_link)/`

// qaMaskedVars are the variables the QA masks in every value, as its
// resources.auto.tfvars sets them.
var qaMaskedVars = map[string]string{"osu_bucket_name": "terraform-ci-bucket", "vm_type": "tinav7.c2r2p1"}

// qaCases lists resource/case folders under root matching re.
func qaCases(t *testing.T, root string, re *regexp.Regexp) []string {
	var out []string
	resources, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources {
		if !r.IsDir() {
			continue
		}
		cs, _ := os.ReadDir(filepath.Join(root, r.Name()))
		for _, c := range cs {
			name := r.Name() + "/" + c.Name()
			if c.IsDir() && re.MatchString(name) {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

var (
	randomSuffixRef = regexp.MustCompile(`random_string\.suffix\[(\d+)\]\.result`)
	randomASNRef    = regexp.MustCompile(`random_integer\.bgp_asn\[(\d+)\]\.result`)
)

// qaProviderFiles are written beside each step: the provider block and
// the variables the cases use. The hashicorp/random provider the QA
// uses for name suffixes cannot be installed here (no registry), so its
// results become locals.
func qaProviderFiles(dir string) error {
	suffix := make([]string, 4)
	for i := range suffix {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, 8)
		for j := range b {
			b[j] = letters[rand.IntN(len(letters))]
		}
		suffix[i] = string(b)
	}
	files := map[string]string{
		"provider.tf": "terraform {\n  required_providers {\n    outscale = { source = \"outscale/outscale\" }\n  }\n}\n",
		"variables.tf": `variable "image_id" {}
variable "region" {}
variable "osu_bucket_name" {}
variable "account_id" {}
variable "vm_type" { default = "tinav7.c2r2p1" }
variable "fgpu_gen" { default = "v5" }
variable "fgpu_vm_type" { default = "tinav5.c2r2p1" }
variable "image_id_uefi_tpm" { default = "" }
variable "keypair_name" { default = "terraform-basic" }
`,
		"random.tf": fmt.Sprintf("locals {\n  qa_suffix = [%q, %q, %q, %q]\n  qa_asn = [%d, %d]\n}\n",
			suffix[0], suffix[1], suffix[2], suffix[3], 1+rand.IntN(50000), 1+rand.IntN(50000)),
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runQACase runs every step of one case and returns "ok" or the first
// difference; the test fails with every difference.
func (s *server) runQACase(t *testing.T, caseDir string, a qaAccount, outDir, name string) string {
	vars := a.vars
	steps, _ := filepath.Glob(filepath.Join(caseDir, "step*.tf"))
	sort.Strings(steps)
	if len(steps) == 0 {
		t.Skip("no step")
	}
	r := &tfRun{t: t, s: s, dir: t.TempDir(), vars: vars, as: &a.Account}
	if err := qaProviderFiles(r.dir); err != nil {
		t.Fatal(err)
	}
	// The QA generates a certificate and its key for the cases that
	// upload one (file("certs/certificate.pem")); the extracted cases do
	// not hold them.
	for _, step := range steps {
		if b, _ := os.ReadFile(step); strings.Contains(string(b), `"certs/`) {
			writeCertificate(t, filepath.Join(r.dir, "certs"))
			break
		}
	}
	t.Cleanup(func() {
		r.tfQuiet("destroy", "-auto-approve")
	})
	result := "ok"
	fail := func(msg string) {
		if result == "ok" {
			result = msg
		}
		t.Error(msg)
	}
	for i, step := range steps {
		body, err := os.ReadFile(step)
		if err != nil {
			t.Fatal(err)
		}
		cfg := randomSuffixRef.ReplaceAllString(string(body), "local.qa_suffix[$1]")
		cfg = randomASNRef.ReplaceAllString(cfg, "local.qa_asn[$1]")
		if err := os.WriteFile(filepath.Join(r.dir, "test.tf"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		stepName := strings.TrimSuffix(filepath.Base(step), ".tf")
		if i > 0 {
			if code, out := r.tfQuiet("plan", "-out=step.tfplan", "-lock=false"); code != 0 {
				fail(fmt.Sprintf("%s: plan: %s", stepName, lastLines(out, 6)))
				break
			}
			if _, out := r.tfQuiet("show", "-json", "step.tfplan"); strings.Contains(out, `"actions":["delete","create"]`) || strings.Contains(out, `"actions":["create","delete"]`) {
				fail(fmt.Sprintf("%s: plan replaces a resource", stepName))
			}
		}
		if code, out := r.tfQuiet("apply", "-auto-approve", "-lock=false"); code != 0 {
			fail(fmt.Sprintf("%s: apply: %s", stepName, lastLines(out, 8)))
			break
		}
		// What `terraform state pull` prints: the local backend's file.
		state, err := os.ReadFile(filepath.Join(r.dir, "terraform.tfstate"))
		if err != nil {
			fail(fmt.Sprintf("%s: no state: %v", stepName, err))
			break
		}
		refBody, err := os.ReadFile(strings.TrimSuffix(step, ".tf") + ".ref")
		if err != nil {
			fail(fmt.Sprintf("%s: no .ref", stepName))
			continue
		}
		var got, ref any
		if err := json.Unmarshal(state, &got); err != nil {
			fail(fmt.Sprintf("%s: state: %v", stepName, err))
			break
		}
		if err := json.Unmarshal(refBody, &ref); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		got = qaMask(got)
		ref = qaDropRandomDeps(ref)
		// Two passes: the first binds ids only where they stand alone
		// (an id attribute), the second compares everything with those
		// bindings. A list of bare ids (backend_vm_ids) is a set whose
		// order says nothing about which id is which, so binding it
		// first, greedily, can pair ids that the resources' own id
		// attributes later contradict.
		ids := map[string]string{}
		qaCompareIDs("", got, ref, ids, true)
		diffs := qaCompare("", got, ref, ids)
		if outDir != "" {
			d := filepath.Join(outDir, name)
			_ = os.MkdirAll(d, 0o755)
			masked, _ := json.MarshalIndent(got, "", "    ")
			_ = os.WriteFile(filepath.Join(d, stepName+".out"), masked, 0o644)
			_ = os.WriteFile(filepath.Join(d, stepName+".diff"), []byte(strings.Join(diffs, "\n")+"\n"), 0o644)
		}
		for _, d := range diffs {
			fail(stepName + ": " + d)
		}
	}
	return result
}

// tfQuiet runs terraform and returns its exit code and output, failing
// nothing: the QA judges the outcome itself.
func (r *tfRun) tfQuiet(args ...string) (int, string) {
	return r.tf(r.dir, []int{0, 1}, args...)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// The masking rules of the provider's QA (tests/test_provider_oapi_config.py
// and test_provider_base.py), restated.
const (
	qaNoTest   = "########"
	qaIDPrefix = "##id-"
)

var (
	qaIgnorePaths = map[string]bool{".lineage": true, ".serial": true, ".terraform_version": true, ".version": true,
		".resources.provider": true, ".check_results": true}
	qaIgnoreEnds = set("request_id", "mac_address", "public_ip", "keypair_fingerprint", "link_date", "private_key",
		"private_ip", "filter", "creation_date", "public_dns_name", "private_dns_name", "dns_name", "secret_key",
		"client_gateway_configuration", "last_modification_date", "upload_date", "comment", "osu_manifest_url",
		"max_value", "file_location", "message", "ip_ranges", "ca_fingerprint", "ca_pem", "body", "chain", "orn",
		"last_state_change_date", "outside_ip_address", "available_ips_count", "backend_ips", "quota_type",
		"used_value", "created_at", "updated_at", "kubeconfig", "expiration_date", "private", "bgp_asn",
		"load_balancer_name", "load_balancer_names", "listener_rule_name", "keypair_name", "security_group_name",
		"image_name", "policy_name", "cookie_name", "user_group_name", "policy_orn", "user_name", "policy_names",
		"security_group_names")
	qaIgnoreTypes = map[string][]string{
		"outscale_net_peering": {"expiration_date"}, "outscale_net_peering_acceptation": {"expiration_date"},
		"outscale_server_certificate": {"name"}, "outscale_vm": {"state", "state_reason"},
		"outscale_flexible_gpu": {"subregion_name"},
	}
	qaIDPrefixes = set("i", "subnet", "snap", "img", "vol", "eni", "vpc", "igw", "nat", "vgw", "pcx", "sg", "rtb",
		"rtbassoc", "vpn", "vpcconn", "ami", "dxvif", "vpce", "fgpu", "aar", "ca")
)

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// qaMask masks a state as the QA masks its output before comparing.
func qaMask(state any) any {
	ids := map[string]string{}
	var walk func(path string, v any) any
	walk = func(path string, v any) any {
		end := path[strings.LastIndex(path, ".")+1:]
		if qaIgnorePaths[path] || qaIgnoreEnds[end] {
			return qaNoTest
		}
		switch x := v.(type) {
		case map[string]any:
			if typ, ok := x["type"].(string); ok {
				if keys := qaIgnoreTypes[typ]; keys != nil {
					insts, _ := x["instances"].([]any)
					for _, in := range insts {
						if attrs, ok := in.(map[string]any)["attributes"].(map[string]any); ok {
							for _, k := range keys {
								if _, ok := attrs[k]; ok {
									attrs[k] = qaNoTest
								}
							}
						}
					}
				}
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				x[k] = walk(path+"."+k, x[k])
			}
			return x
		case []any:
			if path == ".resources" {
				kept := x[:0]
				for _, r := range x {
					if m, ok := r.(map[string]any); ok && (m["type"] == "random_string" || m["type"] == "random_integer") {
						continue
					}
					kept = append(kept, r)
				}
				x = kept
			}
			for i := range x {
				x[i] = walk(fmt.Sprintf("%s.%d", path, i), x[i])
			}
			return x
		}
		replace := false
		if s, ok := v.(string); ok {
			if p, rest, ok := strings.Cut(s, "-"); ok && qaIDPrefixes[p] && !strings.Contains(rest, "-") && (len(rest) == 8 || len(rest) == 32) {
				replace = true
			}
		}
		if (strings.HasSuffix(path, ".id") || strings.HasSuffix(path, "_id")) && truthy(v) {
			replace = true
		}
		if replace {
			key := fmt.Sprint(v)
			if _, ok := ids[key]; !ok {
				ids[key] = fmt.Sprintf("%s%d##", qaIDPrefix, len(ids))
			}
			return ids[key]
		}
		if s, ok := v.(string); ok {
			for name, val := range qaMaskedVars {
				s = strings.ReplaceAll(s, val, "###"+name+"###")
			}
			return s
		}
		return v
	}
	return walk("", state)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// qaDropRandomDeps removes the random_* resources from the dependencies
// of a reference: here their results are locals (see qaProviderFiles).
func qaDropRandomDeps(ref any) any {
	m, _ := ref.(map[string]any)
	res, _ := m["resources"].([]any)
	for _, r := range res {
		insts, _ := r.(map[string]any)["instances"].([]any)
		for _, in := range insts {
			im, _ := in.(map[string]any)
			// Terraform 1.12 records the identity schema; 1.11 (the
			// project's) has none.
			delete(im, "identity_schema_version")
			deps, ok := im["dependencies"].([]any)
			if !ok {
				continue
			}
			kept := []any{}
			for _, d := range deps {
				if s, _ := d.(string); !strings.HasPrefix(s, "random_") {
					kept = append(kept, d)
				}
			}
			if len(kept) == 0 {
				delete(im, "dependencies")
			} else {
				im["dependencies"] = kept
			}
		}
	}
	return ref
}

// qaCompare returns the differences between a masked output and a
// reference, with the QA's rules: "########" in the reference matches
// anything, lists match as sets, and a masked id of the output binds to
// the first masked id of the reference it meets that no other id of the
// output stands for (ids maps them).
func qaCompare(path string, got, ref any, ids map[string]string) []string {
	return qaCompareIDs(path, got, ref, ids, false)
}

// idList reports whether v is a non-empty list of masked ids only.
func idList(v any) bool {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return false
	}
	for _, e := range l {
		if s, ok := e.(string); !ok || !strings.HasPrefix(s, qaIDPrefix) {
			return false
		}
	}
	return true
}

// qaCompareIDs is qaCompare; with skipIDLists (the first pass), lists of
// bare ids and lists of several elements are left alone (neither compared
// nor bound), but resources (paired by address) and their instances
// (paired by index_key) are not.
func qaCompareIDs(path string, got, ref any, ids map[string]string, skipIDLists bool) []string {
	if qaIgnorePaths[path] || ref == qaNoTest {
		return nil
	}
	if skipIDLists && idList(got) && idList(ref) {
		return nil
	}
	switch r := ref.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: type %T, reference %T", path, got, ref)}
		}
		var diffs []string
		keys := map[string]bool{}
		for k := range g {
			keys[k] = true
		}
		for k := range r {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			gv, gok := g[k]
			rv, rok := r[k]
			switch {
			case !gok:
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing here, reference %s", path, k, short(rv)))
			case !rok:
				diffs = append(diffs, fmt.Sprintf("%s.%s: %s here, not in reference", path, k, short(gv)))
			default:
				diffs = append(diffs, qaCompareIDs(path+"."+k, gv, rv, ids, skipIDLists)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: type %T, reference list", path, got)}
		}
		if path == ".resources" {
			return qaCompareResources(g, r, ids, skipIDLists)
		}
		if pairs, ok := byIndexKey(g, r); ok {
			var diffs []string
			for i := range g {
				diffs = append(diffs, qaCompareIDs(path, g[i], r[pairs[i]], ids, skipIDLists)...)
			}
			return diffs
		}
		if skipIDLists && len(r) > 1 {
			// The first pass binds no id inside a list of several
			// elements: matched greedily, elements that differ only
			// by their ids (a route table's links) would pair ids
			// that the resources' own id attributes contradict.
			return nil
		}
		if len(g) != len(r) {
			return []string{fmt.Sprintf("%s: %d elements, reference %d: %s vs %s", path, len(g), len(r), short(g), short(r))}
		}
		used := make([]bool, len(r))
		var diffs []string
		for _, ge := range g {
			best, bestDiffs, bestIDs := -1, []string(nil), map[string]string(nil)
			elemPath := path
			if m, ok := ge.(map[string]any); ok && path == ".resources" {
				// Name the resource in the differences.
				elemPath = fmt.Sprintf(".resources[%v.%v]", m["type"], m["name"])
			}
			for i, re := range r {
				if used[i] {
					continue
				}
				cand := copyMap(ids)
				d := qaCompareIDs(elemPath, ge, re, cand, skipIDLists)
				if best < 0 || len(d) < len(bestDiffs) {
					best, bestDiffs, bestIDs = i, d, cand
				}
				if len(d) == 0 {
					break
				}
			}
			used[best] = true
			for k, v := range bestIDs {
				ids[k] = v
			}
			diffs = append(diffs, bestDiffs...)
		}
		return diffs
	}
	if got == nil && ref == nil {
		return nil
	}
	if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", ref) {
		return []string{fmt.Sprintf("%s: %s here, reference %s", path, short(got), short(ref))}
	}
	if gs, ok := got.(string); ok && strings.HasPrefix(gs, qaIDPrefix) {
		// A masked id is compared through its binding only: the same
		// masked text on both sides names two unrelated objects (each
		// side numbers its ids in its own order).
		rs := ref.(string)
		if b, bound := ids[gs]; bound {
			if b == rs {
				return nil
			}
		} else if strings.HasPrefix(rs, qaIDPrefix) && !boundTo(ids, rs) {
			ids[gs] = rs
			return nil
		}
	} else if got == ref {
		return nil
	}
	return []string{fmt.Sprintf("%s: %s here, reference %s", path, short(got), short(ref))}
}

// qaCompareResources compares the resources of a state with the
// reference's, each with the one of the same address (mode, type and
// name), as terraform names them: managed resources first, so that their
// own ids bind before the data sources that list them are compared.
func qaCompareResources(got, ref []any, ids map[string]string, skipIDLists bool) []string {
	address := func(v any) string {
		m, _ := v.(map[string]any)
		return fmt.Sprintf("%v.%v.%v", m["mode"], m["type"], m["name"])
	}
	refs := map[string]any{}
	for _, r := range ref {
		refs[address(r)] = r
	}
	ordered := slices.Clone(got)
	slices.SortStableFunc(ordered, func(a, b any) int {
		am, _ := a.(map[string]any)
		bm, _ := b.(map[string]any)
		return cmpBool(am["mode"] == "data", bm["mode"] == "data")
	})
	var diffs []string
	seen := map[string]bool{}
	for _, ge := range ordered {
		addr := address(ge)
		m, _ := ge.(map[string]any)
		elemPath := fmt.Sprintf(".resources[%v.%v]", m["type"], m["name"])
		if m["mode"] == "data" {
			elemPath = fmt.Sprintf(".resources[data.%v.%v]", m["type"], m["name"])
		}
		re, ok := refs[addr]
		if !ok {
			diffs = append(diffs, elemPath+": here, not in reference")
			continue
		}
		seen[addr] = true
		diffs = append(diffs, qaCompareIDs(elemPath, ge, re, ids, skipIDLists)...)
	}
	for _, r := range ref {
		if m, _ := r.(map[string]any); !seen[address(r)] {
			diffs = append(diffs, fmt.Sprintf(".resources[%v.%v]: in reference, missing here", m["type"], m["name"]))
		}
	}
	return diffs
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// byIndexKey pairs the instances of a resource made with count or
// for_each by their index_key, when every element on both sides has one;
// ok is false otherwise, or when the keys do not pair one to one.
func byIndexKey(got, ref []any) (pairs map[int]int, ok bool) {
	key := func(v any) (string, bool) {
		m, isMap := v.(map[string]any)
		if !isMap {
			return "", false
		}
		k, has := m["index_key"]
		return fmt.Sprint(k), has
	}
	if len(got) != len(ref) || len(got) == 0 {
		return nil, false
	}
	at := map[string]int{}
	for j, r := range ref {
		k, has := key(r)
		if !has {
			return nil, false
		}
		at[k] = j
	}
	pairs = map[int]int{}
	for i, g := range got {
		k, has := key(g)
		j, found := at[k]
		if !has || !found {
			return nil, false
		}
		pairs[i] = j
	}
	return pairs, len(at) == len(got)
}

// boundTo reports whether some id of the output already stands for the
// reference's id rs: two ids omi tells apart are two objects, and cannot
// both be the reference's one.
func boundTo(ids map[string]string, rs string) bool {
	for _, v := range ids {
		if v == rs {
			return true
		}
	}
	return false
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 160 {
		return string(b[:160]) + "…"
	}
	return string(b)
}
