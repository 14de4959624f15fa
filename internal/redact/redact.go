package redact

import "net/url"

// URL returns s without what may carry a secret: the userinfo
// (user:password@), the query and the fragment. A string that is not an
// absolute URL is returned as it is (a file path, say).
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
