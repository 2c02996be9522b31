package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilterDeb822(t *testing.T) {
	in := `Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://third-party.example/apt
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`
	want := `Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

`
	require.Equal(t, want, filterDeb822(in, "bookworm"))
	require.Empty(t, filterDeb822(in, "trixie"))
}

func TestFilterOneLine(t *testing.T) {
	in := "deb http://mirror.example/debian bookworm main\n" +
		"deb [signed-by=/k.gpg] http://mirror.example/debian-security bookworm-security main\n" +
		"deb-src http://mirror.example/debian bookworm main\n" +
		"# deb http://mirror.example/debian bookworm contrib\n" +
		"deb https://third-party.example/apt cloud-sdk-bookworm main\n"
	want := "deb http://mirror.example/debian bookworm main\n" +
		"deb [signed-by=/k.gpg] http://mirror.example/debian-security bookworm-security main\n"
	require.Equal(t, want, filterOneLine(in, "bookworm"))
}
