package keyrotor_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor"
)

const arn1 = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/payments-api-key-AbCdEf"

// TestKeyNameGolden pins the vendor-side names: a change of the derivation
// would make every key minted before it unprovable (reported, never revoked),
// so it must be deliberate.
func TestKeyNameGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/keynames.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		ARN     string `json:"arn"`
		Token   string `json:"token"`
		Prefix  string `json:"prefix"`
		KeyName string `json:"key_name"`
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 5 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	for _, v := range vectors {
		id, err := keyrotor.ParseARN(v.ARN)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyrotor.KeyNamePrefix(id); got != v.Prefix {
			t.Errorf("KeyNamePrefix(%s) = %q, want %q", v.ARN, got, v.Prefix)
		}
		if got := keyrotor.KeyName(id, v.Token); got != v.KeyName {
			t.Errorf("KeyName(%s) = %q, want %q", v.ARN, got, v.KeyName)
		}
		if id.String() != v.ARN {
			t.Errorf("Identity.String() = %q, want %q", id.String(), v.ARN)
		}
	}
}

// TestKeyNamePrefixDiffersByIdentity: the same secret name in another region
// or account, or re-created (another ARN suffix), gets other key names.
func TestKeyNamePrefixDiffersByIdentity(t *testing.T) {
	base, err := keyrotor.ParseARN(arn1)
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(*keyrotor.Identity){
		"region":    func(i *keyrotor.Identity) { i.Region = "eu-west-1" },
		"account":   func(i *keyrotor.Identity) { i.Account = "210987654321" },
		"suffix":    func(i *keyrotor.Identity) { i.Suffix = "XyZ123" },
		"partition": func(i *keyrotor.Identity) { i.Partition = "aws-cn" },
		"name":      func(i *keyrotor.Identity) { i.Name = "prod/payments-api-kez" },
	}
	for what, change := range variants {
		other := base
		change(&other)
		if keyrotor.KeyNamePrefix(other) == keyrotor.KeyNamePrefix(base) {
			t.Errorf("only the %s differs, yet the key name prefixes are equal: %s", what, keyrotor.KeyNamePrefix(base))
		}
		if strings.HasPrefix(keyrotor.KeyName(other, "t"), keyrotor.KeyNamePrefix(base)) {
			t.Errorf("a key of the secret whose %s differs starts with this secret's prefix", what)
		}
	}
	if keyrotor.KeyName(base, "t1") == keyrotor.KeyName(base, "t2") {
		t.Error("two tokens give the same key name")
	}
}

func TestKeyNameFitsEveryVendor(t *testing.T) {
	id, _ := keyrotor.ParseARN("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:" + strings.Repeat("very/long-name", 30) + "-AbCdEf")
	name := keyrotor.KeyName(id, strings.Repeat("x", 64))
	if len(name) > 64 || len(name) != keyrotor.MaxKeyNameLen {
		t.Fatalf("KeyName is %d characters (%q), want %d ≤ 64 (Twilio's FriendlyName limit)", len(name), name, keyrotor.MaxKeyNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			t.Fatalf("KeyName %q has the character %q", name, r)
		}
	}
}

func TestParseARN(t *testing.T) {
	id, err := keyrotor.ParseARN(arn1)
	if err != nil {
		t.Fatal(err)
	}
	want := keyrotor.Identity{Partition: "aws", Account: "123456789012", Region: "us-east-1", Name: "prod/payments-api-key", Suffix: "AbCdEf"}
	if id != want {
		t.Fatalf("ParseARN = %+v, want %+v", id, want)
	}
	for _, bad := range []string{
		"", "prod/payments-api-key", "arn:aws:iam::123456789012:user/x",
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:noSuffix",
		"arn:aws:secretsmanager::123456789012:secret:x-AbCdEf",
	} {
		if _, err := keyrotor.ParseARN(bad); err == nil {
			t.Errorf("ParseARN(%q) succeeded", bad)
		}
	}
}

func TestMatchAdminFor(t *testing.T) {
	cases := []struct {
		patterns, name string
		want           bool
	}{
		{"prod/*", "prod/payments", true},
		{"prod/*", "prod/a/b/c", true},
		{"prod/*", "staging/prod/x", false},
		{"prod/*,shared/mail-*", "shared/mail-eu", true},
		{" prod/x , shared/mail-* ", "shared/mail-eu", true},
		{"prod/x", "prod/x", true},
		{"prod/x", "prod/xy", false},
		{"prod/x", "Prod/x", false},
		{"prod/?", "prod/a", false},
		{"prod/?", "prod/?", true},
		{"*", "anything/at/all", true},
		{"*mail*", "shared/mail-eu", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbYcd", false},
		{"", "prod/x", false},
		{",,", "prod/x", false},
		{" , ", "", false},
		{"prod/**", "prod/", true},
	}
	for _, c := range cases {
		if got := keyrotor.MatchAdminFor(c.patterns, c.name); got != c.want {
			t.Errorf("MatchAdminFor(%q, %q) = %v, want %v", c.patterns, c.name, got, c.want)
		}
	}
}

func FuzzMatchAdminFor(f *testing.F) {
	f.Add("prod/*", "prod/x")
	f.Fuzz(func(t *testing.T, p, s string) {
		// A pattern without '*' or ',' matches exactly itself.
		if !strings.ContainsAny(p, "*,") && strings.TrimSpace(p) == p && p != "" {
			if keyrotor.MatchAdminFor(p, s) != (p == s) {
				t.Fatalf("MatchAdminFor(%q, %q) is not equality", p, s)
			}
		}
		_ = keyrotor.MatchAdminFor(p, s)
	})
}
