package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Role is what a bearer token may do.
type Role string

// The roles of the token file.
const (
	// RoleRead may use every query (/v1/…) except the export, and /metrics.
	RoleRead Role = "read"
	// RoleExport may use /v1/export only: a third-party ratings body gets
	// the embargoed, suppressed counts and nothing live.
	RoleExport Role = "export"
	// RoleAdmin may use everything.
	RoleAdmin Role = "admin"
)

// minTokenLen is the shortest token LoadTokens accepts: 16 characters of
// the bearer alphabet carry at least 96 bits when generated at random.
const minTokenLen = 16

// LoadTokens reads a token file: one "token role" pair per line, blank lines
// and lines starting with # ignored, a # field after the role starts a
// comment. A token is at least 16 characters of the RFC 6750 bearer alphabet
// (A-Z a-z 0-9 - . _ ~ + / and trailing =); a role is read, export or admin.
// A file without any token is an error: an empty map would turn auth off.
// Errors name the file and the line, never a token.
func LoadTokens(path string) (map[string]Role, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	defer f.Close()
	tokens, err := parseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return tokens, nil
}

// maxTokenLine bounds a line of the token file.
const maxTokenLine = 4096

func parseTokens(r io.Reader) (map[string]Role, error) {
	tokens := make(map[string]Role)
	lineOf := make(map[string]int)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxTokenLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		fields := strings.Fields(string(line))
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) > 2 && strings.HasPrefix(fields[2], "#") {
			fields = fields[:2]
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"token role\", got %d fields", n, len(fields))
		}
		tok, role := fields[0], Role(fields[1])
		if len(tok) < minTokenLen {
			return nil, fmt.Errorf("line %d: the token has %d characters, at least %d are required", n, len(tok), minTokenLen)
		}
		if !validToken(tok) {
			return nil, fmt.Errorf("line %d: the token has a character outside the bearer alphabet A-Z a-z 0-9 - . _ ~ + / (and trailing =)", n)
		}
		switch role {
		case RoleRead, RoleExport, RoleAdmin:
		default:
			// The role is not quoted: with the columns swapped it would be a token.
			return nil, fmt.Errorf("line %d: the role is not read, export or admin", n)
		}
		if prev, dup := lineOf[tok]; dup {
			return nil, fmt.Errorf("line %d: the token repeats the one on line %d", n, prev)
		}
		tokens[tok] = role
		lineOf[tok] = n
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("line %d: longer than %d bytes", n+1, maxTokenLine)
		}
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("no tokens: an empty file would turn authentication off")
	}
	return tokens, nil
}

// validToken reports whether tok is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func validToken(tok string) bool {
	i := 0
	for ; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(tok); i++ {
		if tok[i] != '=' {
			return false
		}
	}
	return true
}

// keyring holds the SHA-256 digests of the tokens, so that every comparison
// is between 32-byte values and its time reveals neither a token's content
// nor its length.
type keyring struct {
	digests [][sha256.Size]byte
	roles   []Role
}

func newKeyring(tokens map[string]Role) *keyring {
	k := &keyring{}
	for tok, role := range tokens {
		k.digests = append(k.digests, sha256.Sum256([]byte(tok)))
		k.roles = append(k.roles, role)
	}
	return k
}

// role returns the role of tok. It compares against every token, without
// stopping at a match.
func (k *keyring) role(tok string) (Role, bool) {
	d := sha256.Sum256([]byte(tok))
	var role Role
	found := 0
	for i := range k.digests {
		eq := subtle.ConstantTimeCompare(d[:], k.digests[i][:])
		if eq == 1 {
			role = k.roles[i]
		}
		found |= eq
	}
	return role, found == 1
}

// realm is the WWW-Authenticate challenge of a 401.
const realm = `Bearer realm="ratingsd"`

// authorize checks r's bearer token against need ("" = public). It writes
// the 401 or 403 and returns false when the request may not proceed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, need Role) bool {
	if need == "" || s.keys == nil {
		return true
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		w.Header().Set("WWW-Authenticate", realm)
		writeError(w, http.StatusUnauthorized, "missing bearer token: send the header Authorization: Bearer <token>")
		return false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", realm)
		writeError(w, http.StatusUnauthorized, "the Authorization header is not a bearer token: send Authorization: Bearer <token>")
		return false
	}
	role, ok := s.keys.role(strings.TrimSpace(tok))
	if !ok {
		w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid bearer token")
		return false
	}
	if role != RoleAdmin && role != need {
		writeError(w, http.StatusForbidden, fmt.Sprintf("role %s may not use %s: it needs role %s or admin", role, r.Pattern, need))
		return false
	}
	return true
}
