package imageservice

import "testing"

func TestAuthConfigCredentials(t *testing.T) {
	for _, tc := range []struct {
		ac                   AuthConfig
		user, secret, bearer string
	}{
		{AuthConfig{}, "", "", ""},
		{AuthConfig{Username: "u", Password: "p"}, "u", "p", ""},
		{AuthConfig{Username: "u", Password: "p", IdentityToken: "id"}, "", "id", ""},
		{AuthConfig{RegistryToken: "bearer"}, "", "", "bearer"},
	} {
		creds, token := AuthConfigCredentials(tc.ac)
		u, s, err := creds("any.example.com")
		b, terr := token("any.example.com")
		if err != nil || terr != nil || u != tc.user || s != tc.secret || b != tc.bearer {
			t.Errorf("%+v: %q, %q, %q (%v, %v)", tc.ac, u, s, b, err, terr)
		}
	}
}
