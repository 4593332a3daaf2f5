// Package realclients drives a real `omi serve` with the clients omi's users
// run: terraform 1.11 with terraform-provider-outscale 1.8.0, and packer
// 1.11 with packer-plugin-outscale 1.6.1, unchanged builds kept in
// ../shared/clients (see its README). Each configuration of testdata/ is
// applied, planned again (the plan must be empty), imported into a fresh
// state (the plan of what was imported must be empty), refreshed and
// destroyed, and the SDK then checks that nothing the configuration made is
// left. It is its own package so that CI runs it beside the others.
package realclients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/apitest"
)

// server is the omi every configuration of this package runs against.
type server struct {
	*apitest.Env
	proc *apitest.OmiProc
	// OOS is the host:port of omi's object storage (export tasks).
	OOS string
	// clientEnv is what terraform and packer need besides OSC_*:
	// TF_CLI_CONFIG_FILE, PACKER, PACKER_PLUGIN_PATH, checkpoints off.
	clientEnv []string
	terraform string
	packer    string
}

// clientsDir is ../shared/clients from the repository root, where CI and
// every development machine of the project keep the real clients.
func clientsDir() string { return filepath.Join(apitest.RepoRoot(), "..", "shared", "clients") }

// need skips the test when a client is missing, or fails it under CI=true.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// installClients runs ../shared/clients/install and returns the variables
// it exports.
func installClients(t *testing.T) (map[string]string, error) {
	install := filepath.Join(clientsDir(), "install")
	if _, err := os.Stat(install); err != nil {
		return nil, err
	}
	out, err := exec.Command(install).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", install, err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")) {
			if k, v, ok := strings.Cut(f, "="); ok {
				vars[k] = v
			}
		}
	}
	if vars["TF_CLI_CONFIG_FILE"] == "" || vars["PACKER"] == "" {
		return nil, fmt.Errorf("%s printed no TF_CLI_CONFIG_FILE or PACKER: %s", install, out)
	}
	return vars, nil
}

// startServer checks the clients, builds omi and starts it with the
// example accounts (joe runs the configurations; titi is the account
// launch permissions are given to) and its official OMIs.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, apitest.ExampleAccountsFile())
}

// startServerWith is startServer with another configuration file.
func startServerWith(t *testing.T, config string) *server {
	t.Helper()
	tf, err := exec.LookPath("terraform")
	need(t, "terraform (1.11, /usr/local/bin/terraform on the project's machines)", err)
	vars, err := installClients(t)
	need(t, "the real clients in ../shared/clients", err)
	s := &server{terraform: tf, packer: vars["PACKER"]}
	for k, v := range vars {
		s.clientEnv = append(s.clientEnv, k+"="+v)
	}
	bin := apitest.BuildOmi(t)
	s.OOS = apitest.FreePort(t)
	s.proc = apitest.StartOmi(t, bin, t.TempDir(), "--config", config, "--oos-listen", s.OOS,
		"--nbd-listen", apitest.FreePort(t))
	s.Env = apitest.Attach(t, s.proc.URL)
	return s
}

// tfRun is one configuration's working directory.
type tfRun struct {
	t    *testing.T
	s    *server
	dir  string
	vars map[string]string
	// as is the account terraform runs as (nil: joe).
	as *apitest.Account
}

// newRun copies testdata/<name> into a fresh directory.
func (s *server) newRun(t *testing.T, name string, vars map[string]string) *tfRun {
	t.Helper()
	r := &tfRun{t: t, s: s, dir: t.TempDir(), vars: vars}
	copyDir(t, filepath.Join("testdata", name), r.dir)
	return r
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			// Files beside the configuration (certs/), not
			// terraform's own.
			if e.Name() == ".terraform" {
				continue
			}
			if err := os.MkdirAll(filepath.Join(to, e.Name()), 0o700); err != nil {
				t.Fatal(err)
			}
			copyDir(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// env is the environment of a client run as joe.
func (s *server) env(extra map[string]string) []string { return s.envAs(s.Joe, extra) }

// envAs is env for another account.
func (s *server) envAs(a apitest.Account, extra map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"OSC_ACCESS_KEY=" + a.AccessKey, "OSC_SECRET_KEY=" + a.SecretKey, "OSC_REGION=" + apitest.Region,
		"OSC_ENDPOINT_API=" + s.APIURL(), "TF_IN_AUTOMATION=1", "TF_INPUT=0"}
	env = append(env, s.clientEnv...)
	for k, v := range extra {
		env = append(env, "TF_VAR_"+k+"="+v)
	}
	return env
}

// tf runs terraform in dir and returns its exit code and output; a code
// other than the allowed ones fails the test.
func (r *tfRun) tf(dir string, allowed []int, args ...string) (int, string) {
	r.t.Helper()
	// Not the test's context: the cleanup's destroy runs after it ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args = append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)
	cmd := exec.CommandContext(ctx, r.s.terraform, args...)
	cmd.Dir = dir
	cmd.Env = r.s.env(r.vars)
	if r.as != nil {
		cmd.Env = r.s.envAs(*r.as, r.vars)
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			r.t.Fatalf("terraform %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	for _, a := range allowed {
		if a == code {
			return code, string(out)
		}
	}
	r.t.Fatalf("terraform %s in %s: exit %d\n%s", strings.Join(args, " "), dir, code, out)
	return code, string(out)
}

// stateResource is one managed resource of `terraform show -json`.
type stateResource struct {
	Address string         `json:"address"`
	Mode    string         `json:"mode"`
	Type    string         `json:"type"`
	Values  map[string]any `json:"values"`
}

// resources lists the managed resources of the state in dir.
func (r *tfRun) resources(dir string) []stateResource {
	r.t.Helper()
	_, out := r.tf(dir, []int{0}, "show", "-json")
	var show struct {
		Values struct {
			RootModule struct {
				Resources []stateResource `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	// The JSON is the last line; warnings about dev_overrides come first.
	line := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	if err := json.Unmarshal([]byte(line), &show); err != nil {
		r.t.Fatalf("terraform show -json: %v\n%s", err, out)
	}
	var res []stateResource
	for _, x := range show.Values.RootModule.Resources {
		if x.Mode == "managed" {
			res = append(res, x)
		}
	}
	return res
}

// planActions reads a saved plan: the actions planned for each managed
// resource ("no-op", "create", "update", "delete,create", ...).
func (r *tfRun) planActions(dir, plan string) map[string]string {
	r.t.Helper()
	_, out := r.tf(dir, []int{0}, "show", "-json", plan)
	var p struct {
		ResourceChanges []struct {
			Address string `json:"address"`
			Mode    string `json:"mode"`
			Type    string `json:"type"`
			Change  struct {
				Actions []string       `json:"actions"`
				Before  map[string]any `json:"before"`
				After   map[string]any `json:"after"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	line := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	if err := json.Unmarshal([]byte(line), &p); err != nil {
		r.t.Fatalf("terraform show -json %s: %v\n%s", plan, err, out)
	}
	m := map[string]string{}
	for _, c := range p.ResourceChanges {
		if c.Mode != "managed" {
			continue
		}
		actions := strings.Join(c.Change.Actions, ",")
		if (actions == "update" || actions == "delete,create") && onlyRequestArguments(c.Type, c.Change.Before, c.Change.After) {
			actions = "no-op"
		}
		m[c.Address] = actions
	}
	return m
}

// requestArguments are arguments of a request that the API's answer never
// holds (the Image object has no VmId: an OMI does not remember the VM it
// was made from), so that no provider can read them back on import. A plan
// that sets only these after an import is what the real cloud gives too;
// the provider's own import tests ignore them (ImportStateVerifyIgnore).
var requestArguments = map[string][]string{
	"outscale_image": {"vm_id", "no_reboot", "source_image_id", "source_region_name"},
	// A request flag of CreateSecurityGroup; the provider forces a
	// replacement when it is null after import.
	"outscale_security_group": {"remove_default_outbound_rule"},
	// What CreateServerCertificate uploads; the API shows none of it.
	"outscale_server_certificate": {"body", "chain", "private_key"},
}

// onlyRequestArguments reports whether before and after differ only in
// request arguments of the type (values known only after apply, null in
// the plan's after, are not differences).
func onlyRequestArguments(typ string, before, after map[string]any) bool {
	skip := map[string]bool{"request_id": true, "timeouts": true}
	for _, a := range requestArguments[typ] {
		skip[a] = true
	}
	for k, v := range after {
		if !skip[k] && !sameKnown(v, before[k]) {
			return false
		}
	}
	return true
}

// sameKnown reports whether a planned value agrees with the value before
// wherever it is known: the plan leaves out what it cannot know yet (an
// HTTPS listener's server_certificate_id when its certificate is replaced
// for its request arguments), and that is no difference.
func sameKnown(after, before any) bool {
	if unknown(after) {
		return true
	}
	switch a := after.(type) {
	case map[string]any:
		b, ok := before.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range a {
			if !sameKnown(v, b[k]) {
				return false
			}
		}
		return true
	case []any:
		b, ok := before.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameKnown(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return fmt.Sprint(after) == fmt.Sprint(before)
}

// unknown reports whether a planned value is not known yet: null, or a
// list of values none of which is known (a set of ids of resources the
// plan replaces, such as a load balancer's security_groups when its groups
// are replaced for remove_default_outbound_rule).
func unknown(v any) bool {
	l, ok := v.([]any)
	if v == nil || !ok || len(l) == 0 {
		return v == nil
	}
	for _, x := range l {
		if x != nil {
			return false
		}
	}
	return true
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	}
	return ""
}

// importID is the id `terraform import` takes for a resource, as the
// provider's documentation gives it, or "" for a resource the provider
// cannot import.
func importID(res stateResource) string {
	v := res.Values
	switch res.Type {
	case "outscale_image_launch_permission", "outscale_image_export_task", "outscale_snapshot_attributes",
		"outscale_snapshot_export_task", "outscale_nic_private_ip", "outscale_main_route_table_link",
		"outscale_net_peering_acceptation",
		// Provider 1.8.0 imports none of these (no ImportState); it
		// imports outscale_load_balancer_attributes by name but leaves
		// its load_balancer_name null, so the plan then replaces it.
		"outscale_load_balancer_listener_rule", "outscale_load_balancer_policy", "outscale_load_balancer_vms",
		"outscale_load_balancer_attributes",
		// Nor this one ("Resource Import Not Implemented").
		"outscale_virtual_gateway_route_propagation",
		// Its id is a random one of the provider's making, and its
		// passthrough import keeps neither tag nor resource_ids, both
		// ForceNew: the plan after any import replaces it.
		"outscale_tag":
		return ""
	case "outscale_keypair":
		// Documented as importable by keypair_id, but provider 1.8.0's
		// import sets only the id and then reads by KeypairNames: [""]
		// (resource_keypair.go), which finds nothing.
		return ""
	case "outscale_security_group_rule":
		// Only a rule of one IP range has an import id.
		if str(v["ip_range"]) == "" {
			return ""
		}
		return strings.Join([]string{str(v["security_group_id"]), str(v["flow"]), str(v["ip_protocol"]),
			str(v["from_port_range"]), str(v["to_port_range"]), str(v["ip_range"])}, "_")
	case "outscale_nic_link":
		return str(v["nic_id"])
	case "outscale_route":
		return str(v["route_table_id"]) + "_" + str(v["destination_ip_range"])
	case "outscale_route_table_link":
		return str(v["route_table_id"]) + "_" + str(v["link_route_table_id"])
	}
	return str(v["id"])
}

// lifecycle runs a configuration through apply, an empty second plan,
// import into a fresh state with an empty plan, refresh and destroy, and
// returns the ids of every resource it made (for the leftover check).
// between runs after the first apply, while everything exists.
func (r *tfRun) lifecycle(between func(res []stateResource)) []stateResource {
	t := r.t
	r.tf(r.dir, []int{0}, "apply", "-auto-approve")
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			r.tf(r.dir, []int{0, 1}, "destroy", "-auto-approve")
		}
	})
	if code, out := r.tf(r.dir, []int{0, 2}, "plan", "-detailed-exitcode"); code != 0 {
		t.Errorf("second plan after apply is not empty:\n%s", out)
	}
	res := r.resources(r.dir)
	if between != nil {
		between(res)
	}

	// Import every importable resource into a fresh state: the plan of
	// what was imported must then be empty.
	fresh := t.TempDir()
	copyDir(t, r.dir, fresh)
	os.Remove(filepath.Join(fresh, "terraform.tfstate"))
	os.Remove(filepath.Join(fresh, "terraform.tfstate.backup"))
	imported := map[string]bool{}
	for _, x := range res {
		id := importID(x)
		if id == "" {
			continue
		}
		r.tf(fresh, []int{0}, "import", x.Address, id)
		imported[x.Address] = true
	}
	if len(imported) > 0 {
		r.tf(fresh, []int{0, 2}, "plan", "-detailed-exitcode", "-out=import.plan")
		bad := false
		for addr, actions := range r.planActions(fresh, "import.plan") {
			if imported[addr] && actions != "no-op" {
				t.Errorf("after terraform import, the plan would %s %s", actions, addr)
				bad = true
			}
		}
		if bad {
			_, out := r.tf(fresh, []int{0}, "show", "import.plan")
			t.Logf("plan after import:\n%s", out)
		}
	}

	r.tf(r.dir, []int{0}, "apply", "-refresh-only", "-auto-approve")
	if code, out := r.tf(r.dir, []int{0, 2}, "plan", "-detailed-exitcode"); code != 0 {
		t.Errorf("plan after refresh is not empty:\n%s", out)
	}
	r.tf(r.dir, []int{0}, "destroy", "-auto-approve")
	destroyed = true
	return res
}

// kinds maps an id prefix to the Read call, its id filter and the list it
// answers, for the leftover check.
var kinds = map[string][3]string{
	"i-":        {"ReadVms", "VmIds", "Vms"},
	"vol-":      {"ReadVolumes", "VolumeIds", "Volumes"},
	"snap-":     {"ReadSnapshots", "SnapshotIds", "Snapshots"},
	"ami-":      {"ReadImages", "ImageIds", "Images"},
	"sg-":       {"ReadSecurityGroups", "SecurityGroupIds", "SecurityGroups"},
	"eipalloc-": {"ReadPublicIps", "PublicIpIds", "PublicIps"},
	"key-":      {"ReadKeypairs", "KeypairIds", "Keypairs"},
	"vpc-":      {"ReadNets", "NetIds", "Nets"},
	"subnet-":   {"ReadSubnets", "SubnetIds", "Subnets"},
	"eni-":      {"ReadNics", "NicIds", "Nics"},
	"igw-":      {"ReadInternetServices", "InternetServiceIds", "InternetServices"},
	"rtb-":      {"ReadRouteTables", "RouteTableIds", "RouteTables"},
	"nat-":      {"ReadNatServices", "NatServiceIds", "NatServices"},
	"pcx-":      {"ReadNetPeerings", "NetPeeringIds", "NetPeerings"},
	"dopt-":     {"ReadDhcpOptions", "DhcpOptionsSetIds", "DhcpOptionsSets"},
}

// gone states: what a Read may still list for a while after deletion.
var goneStates = map[string]bool{"terminated": true, "shutting-down": true, "deleted": true, "deleting": true}

// checkNothingLeft asks the API, as joe, for every id the configuration
// made and fails the test for each one still there.
func (s *server) checkNothingLeft(t *testing.T, res []stateResource) {
	t.Helper()
	checked := 0
	for _, x := range res {
		id := str(x.Values["id"])
		for prefix, k := range kinds {
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			var out map[string]any
			s.MustCall(t, s.Joe, k[0], map[string]any{"Filters": map[string]any{k[1]: []string{id}}}, &out)
			items, _ := out[k[2]].([]any)
			for _, it := range items {
				m, _ := it.(map[string]any)
				st := str(m["State"])
				if obj, ok := m["State"].(map[string]any); ok { // Net peerings: State{Name, Message}
					st = str(obj["Name"])
				}
				if !goneStates[st] {
					t.Errorf("%s (%s) is still there after terraform destroy: %s %v", x.Address, id, k[0], m)
				}
			}
			checked++
		}
	}
	if checked == 0 {
		t.Errorf("the leftover check checked nothing among %d resources", len(res))
	}
}
