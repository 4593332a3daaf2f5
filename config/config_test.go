package config

import (
	"strings"
	"testing"
)

func TestExampleAccounts(t *testing.T) {
	f, err := Load("../examples/accounts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Accounts) != 3 || f.Region != "eu-west-2" {
		t.Fatalf("example: %d accounts, region %q", len(f.Accounts), f.Region)
	}
	keys := map[string]string{}
	for _, a := range f.Accounts {
		for _, k := range a.AccessKeys {
			keys[a.Alias+"/"+k.AccessKeyID] = k.SecretKey
		}
	}
	if keys["joe/11112211111110000000"] != "0000001111112222223333334444445555555666" ||
		keys["titi/11112211111110000333"] != "1000001111112222223333334444445555555666" {
		t.Fatalf("the client repositories' test keys are missing: %v", keys)
	}
	specs := f.Specs()
	if !specs[0].Provider || specs[0].Alias != "Outscale" || len(specs) != 4 {
		t.Fatalf("specs: %+v", specs)
	}
}

func TestParseRefusesBadConfigs(t *testing.T) {
	const ok = `accounts:
  - account_id: "123456789012"
    alias: a
    email: a@example.com
    access_keys:
      - access_key_id: "AAAAAAAAAAAAAAAAAAAA"
        secret_key: "0000000000000000000000000000000000000000"
`
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if f, err := Parse(nil); err != nil || len(f.Accounts) != 0 {
		t.Fatalf("empty config: %v", err)
	}
	for name, c := range map[string]struct{ from, to, want string }{
		"unknown key":     {"alias: a", "alias: a\n    nickname: x", "nickname"},
		"short id":        {`"123456789012"`, `"1234"`, "12 digits"},
		"short key":       {`"AAAAAAAAAAAAAAAAAAAA"`, `"AAAA"`, "20 upper-case"},
		"lower-case key":  {`"AAAAAAAAAAAAAAAAAAAA"`, `"aaaaaaaaaaaaaaaaaaaa"`, "20 upper-case"},
		"short secret":    {`"0000000000000000000000000000000000000000"`, `"00"`, "40 printable"},
		"missing email":   {"email: a@example.com", "", "email is required"},
		"not yaml at all": {"accounts:", "accounts: [", "parse config"},
	} {
		_, err := Parse([]byte(strings.Replace(ok, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to mention %q", name, err, c.want)
		}
	}
	dup := ok + strings.Replace(strings.TrimPrefix(ok, "accounts:\n"), "a@example.com", "b@example.com", 1)
	if _, err := Parse([]byte(dup)); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate account id: %v", err)
	}
}
