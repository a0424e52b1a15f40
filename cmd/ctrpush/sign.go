package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/ctrpush/ctrpush/sign"
	"github.com/ctrpush/ctrpush/sign/cosign"
	"github.com/ctrpush/ctrpush/sign/notation"
)

// signFlags are push's --sign, --key and --cert: the i-th --key goes with
// the i-th --sign, and each --cert, in order, with a notation --sign.
type signFlags struct {
	formats, keys, certs []string
}

const signHelp = `sign what the tag names, before the tag moves: cosign (with --key cosign.key, the password from COSIGN_PASSWORD or a prompt) or notation (with --key KEY.pem --cert CHAIN.pem, or --key NAME of a notation key); repeat for several signatures, each with its --key`

func (f *signFlags) register(fl *pflag.FlagSet) {
	fl.StringArrayVar(&f.formats, "sign", nil, signHelp)
	fl.StringArrayVar(&f.keys, "key", nil, "the key of the --sign at the same place: cosign's encrypted private key file; notation's PEM private key file or key name")
	fl.StringArrayVar(&f.certs, "cert", nil, "the certificate chain (PEM, signing certificate first) of a notation --key file, in the order of the notation --sign values")
}

// open checks the flags and opens every key before anything is sent: a
// key that cannot be read or decrypted is an error (exit 1) and nothing
// is pushed.
func (f *signFlags) open(stdin io.Reader, stderr io.Writer) ([]sign.Signer, error) {
	if len(f.formats) == 0 {
		if len(f.keys) > 0 || len(f.certs) > 0 {
			return nil, usagef("--key and --cert go with --sign cosign or --sign notation")
		}
		return nil, nil
	}
	if len(f.keys) != len(f.formats) {
		return nil, usagef("%d --sign but %d --key: give each --sign its --key, in the same order", len(f.formats), len(f.keys))
	}
	notations := 0
	for _, s := range f.formats {
		switch s {
		case "cosign":
		case "notation":
			notations++
		default:
			return nil, usagef("--sign %q: say cosign or notation", s)
		}
	}
	if len(f.certs) > notations {
		return nil, usagef("%d --cert for %d --sign notation: --cert goes with notation keys only", len(f.certs), notations)
	}
	var signers []sign.Signer
	n := 0
	for i, s := range f.formats {
		switch s {
		case "cosign":
			c, err := cosign.OpenKey(f.keys[i], func() ([]byte, error) { return cosignPassword(stdin, stderr, f.keys[i]) })
			if err != nil {
				return nil, err
			}
			signers = append(signers, c)
		case "notation":
			cert := ""
			if n < len(f.certs) {
				cert = f.certs[n]
			}
			n++
			s, err := notation.OpenKey(f.keys[i], cert)
			if err != nil {
				return nil, err
			}
			signers = append(signers, s)
		}
	}
	return signers, nil
}

// cosignPassword is the password of a cosign key as cosign reads it:
// COSIGN_PASSWORD when set (even empty), else typed at the terminal.
func cosignPassword(stdin io.Reader, stderr io.Writer, key string) ([]byte, error) {
	if p, ok := os.LookupEnv("COSIGN_PASSWORD"); ok {
		return []byte(p), nil
	}
	in, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, errors.New("its password: set COSIGN_PASSWORD (as for cosign), or run in a terminal to type it")
	}
	return readPassword(in, stderr, fmt.Sprintf("Enter password for private key %s: ", key))
}

// readPassword turns the terminal's echo off, then prompts, then reads a
// line (term.ReadPassword prompts before echo is off, so what is typed
// right after the prompt appears could show).
func readPassword(in *os.File, stderr io.Writer, prompt string) ([]byte, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(stderr, prompt)
	defer fmt.Fprintln(stderr)
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return line, nil
			}
			line = append(line, b[0])
			if len(line) > 4096 {
				return nil, errors.New("the password typed is longer than 4096 bytes")
			}
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return line, nil
			}
			return nil, err
		}
	}
}
