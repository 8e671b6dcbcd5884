package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	readToken   = "read-0123456789abcdef"
	exportToken = "export-0123456789abcdef"
	adminToken  = "admin-0123456789abcdef"
)

func TestAuth(t *testing.T) {
	f := scenarioFixture(t, Config{
		Tokens:  map[string]Role{readToken: RoleRead, exportToken: RoleExport, adminToken: RoleAdmin},
		Privacy: func() any { return map[string]string{"model": "tuning"} },
	})
	check := func(path, authorization string, code int, msg string) {
		t.Helper()
		r := f.do(t, "GET", path, authorization)
		if r.code != code {
			t.Errorf("GET %s with %q: status %d, want %d: %s", path, authorization, r.code, code, r.body)
		}
		if msg != "" {
			var e struct{ Error string }
			if err := json.Unmarshal(r.body, &e); err != nil || !strings.Contains(e.Error, msg) {
				t.Errorf("GET %s with %q: body %s, want an error containing %q", path, authorization, r.body, msg)
			}
		}
		if code == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="ratingsd"`) {
			t.Errorf("GET %s with %q: 401 with WWW-Authenticate %q, want a Bearer challenge", path, authorization, r.header.Get("WWW-Authenticate"))
		}
		for _, tok := range []string{readToken, exportToken, adminToken} {
			if bytes.Contains(r.body, []byte(tok)) {
				t.Errorf("GET %s: the response contains a token: %s", path, r.body)
			}
		}
	}
	bearer := func(tok string) string { return "Bearer " + tok }

	check("/v1/now", "", 401, "missing bearer token")
	check("/v1/now", "Basic cmVhZDpyZWFk", 401, "not a bearer token")
	check("/v1/now", "Bearer", 401, "not a bearer token")
	check("/v1/now", bearer("read-0123456789abcdeX"), 401, "invalid bearer token")
	check("/v1/now", bearer(readToken+"x"), 401, "invalid bearer token")
	check("/v1/now", bearer(readToken[:16]), 401, "invalid bearer token")
	check("/v1/now", bearer(readToken), 200, "")
	check("/v1/now", "bearer "+readToken, 200, "") // the scheme is case-insensitive
	check("/v1/now", bearer(adminToken), 200, "")
	check("/v1/now", bearer(exportToken), 403, "role export may not use GET /v1/now: it needs role read or admin")
	for _, path := range []string{"/v1/channels", "/v1/regions", "/v1/audience?channel=npo1", "/v1/reach", "/v1/flow?from=npo1", "/v1/capacity?region=ams-03"} {
		check(path, "", 401, "missing bearer token")
		check(path, bearer(readToken), 200, "")
		check(path, bearer(exportToken), 403, "needs role read or admin")
		check(path, bearer(adminToken), 200, "")
	}
	check("/v1/export", "", 401, "missing bearer token")
	check("/v1/export", bearer(readToken), 403, "role read may not use GET /v1/export: it needs role export or admin")
	check("/v1/export", bearer(exportToken), 501, "this server has no counts archive configured")
	check("/v1/export", bearer(adminToken), 501, "this server has no counts archive configured")
	check("/metrics", "", 401, "missing bearer token")
	check("/metrics", bearer(readToken), 200, "")
	check("/metrics", bearer(exportToken), 403, "needs role read or admin")
	check("/v1/stream", bearer(exportToken), 403, "needs role read or admin")
	// Public: probes, the page and the privacy statement.
	check("/healthz", "", 200, "")
	check("/readyz", "", 200, "")
	check("/", "", 200, "")
	check("/v1/privacy", "", 200, "")
	check("/v1/privacy", bearer("wrong-but-not-needed"), 200, "")
	// A route that does not exist is a 404 with or without a token.
	check("/v1/nothing", "", 404, "no route")

	if r := f.do(t, "GET", "/v1/now", bearer("read-0123456789abcdeX")); r.header.Get("WWW-Authenticate") != `Bearer realm="ratingsd", error="invalid_token"` {
		t.Errorf("WWW-Authenticate %q, want the invalid_token error", r.header.Get("WWW-Authenticate"))
	}

	// The stream with a read token.
	req, _ := http.NewRequest("GET", f.ts.URL+"/v1/stream", nil)
	req.Header.Set("Authorization", bearer(readToken))
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /v1/stream with a read token: %d, want 200", resp.StatusCode)
	}
}

func TestKeyring(t *testing.T) {
	k := newKeyring(map[string]Role{readToken: RoleRead, adminToken: RoleAdmin})
	f := func(tok string, want Role, wantOK bool) {
		t.Helper()
		if got, ok := k.role(tok); got != want || ok != wantOK {
			t.Errorf("role(%q) = %q, %v; want %q, %v", tok, got, ok, want, wantOK)
		}
	}
	f(readToken, RoleRead, true)
	f(adminToken, RoleAdmin, true)
	f(exportToken, "", false)
	f("", "", false)
	f(readToken[:len(readToken)-1], "", false)
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	n := 0
	load := func(content string) (map[string]Role, string, error) {
		n++
		path := filepath.Join(dir, fmt.Sprintf("tokens-%d", n))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens, err := LoadTokens(path)
		return tokens, path, err
	}
	ok := func(content string, want map[string]Role) {
		t.Helper()
		got, _, err := load(content)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("LoadTokens(%q) = %v, %v; want %v", content, got, err, want)
		}
	}
	bad := func(content, wantErr string) {
		t.Helper()
		_, path, err := load(content)
		if err == nil {
			t.Fatalf("LoadTokens(%q): no error, want %q", content, wantErr)
		}
		if !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadTokens(%q):\ngot  %v\nwant the file and %q", content, err, wantErr)
		}
		for _, field := range strings.Fields(content) {
			if len(field) >= minTokenLen-4 && strings.Contains(err.Error(), field) {
				t.Errorf("LoadTokens(%q): the error %q shows %q", content, err, field)
			}
		}
	}

	ok("# dashboards\n"+readToken+" read\n\n"+adminToken+"  admin   # ops\r\n\t"+exportToken+"\texport\n",
		map[string]Role{readToken: RoleRead, adminToken: RoleAdmin, exportToken: RoleExport})
	ok("\xef\xbb\xbf"+readToken+" read", map[string]Role{readToken: RoleRead})
	ok("bWFkZS11cCB0b2tlbiBieXRlcw== read\nA-._~+/0123456789z admin\n",
		map[string]Role{"bWFkZS11cCB0b2tlbiBieXRlcw==": RoleRead, "A-._~+/0123456789z": RoleAdmin})

	bad("", "no tokens: an empty file would turn authentication off")
	bad("# only a comment\n\n", "no tokens")
	bad(readToken+"\n", `line 1: want "token role", got 1 fields`)
	bad("# x\n"+readToken+" read admin\n", `line 2: want "token role", got 3 fields`)
	bad("short-token-1 read\n", "line 1: the token has 13 characters, at least 16 are required")
	bad(readToken+" reader\n", "line 1: the role is not read, export or admin")
	bad("read "+readToken+"\n", "line 1: the token has 4 characters") // columns swapped
	bad(readToken+" Read\n", "line 1: the role is not read, export or admin")
	bad("token:with:colons-0123 read\n", "line 1: the token has a character outside the bearer alphabet")
	bad("tokenwith=inside-0123 read\n", "line 1: the token has a character outside the bearer alphabet")
	bad("tökenwithumlaut-0123 read\n", "the token has a character outside the bearer alphabet")
	bad(readToken+" read\n"+adminToken+" admin\n"+readToken+" admin\n", "line 3: the token repeats the one on line 1")
	bad(readToken+" read\n"+strings.Repeat("x", 5000)+" read\n", "line 2: longer than 4096 bytes")

	if _, err := LoadTokens(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "read tokens file") {
		t.Errorf("LoadTokens of a missing file: %v, want a read error", err)
	}
}

// FuzzParseTokens: any file parses or fails with a line-numbered error that
// shows no token-sized field of the input; what parses obeys the format.
func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{
		"", "#", readToken + " read", readToken + " read # c", "read " + readToken,
		readToken + " reader", readToken, "a b c d", "short read", readToken + " read\n" + readToken + " admin",
		"\xef\xbb\xbf" + readToken + " export\r\n", "tok=en=0123456789ab read", "====0123456789abcdef read",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tokens, err := parseTokens(strings.NewReader(s))
		if err != nil {
			for _, field := range strings.Fields(s) {
				if len(field) >= minTokenLen && strings.Contains(err.Error(), field) {
					t.Fatalf("error %q shows the field %q", err, field)
				}
			}
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "no tokens") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		if len(tokens) == 0 {
			t.Fatal("no error and no tokens")
		}
		for tok, role := range tokens {
			if len(tok) < minTokenLen || !validToken(tok) {
				t.Fatalf("accepted token %q", tok)
			}
			if role != RoleRead && role != RoleExport && role != RoleAdmin {
				t.Fatalf("accepted role %q", role)
			}
		}
	})
}
