package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ctrpush/ctrpush/dockercreds"
	"github.com/ctrpush/ctrpush/imageservice"
)

func (a *app) loginCommand() *cobra.Command {
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [-u USER] [--password-stdin] REGISTRY",
		Short: "Log in to a registry, storing the credentials where docker does",
		Long: `Check the credentials against REGISTRY and store them in $DOCKER_CONFIG/config.json
(default ~/.docker), in its credential store or helper when one is configured:
the same place 'docker login' writes, so both tools share them.`,
		Example: `  echo "$TOKEN" | ctrpush login -u ci --password-stdin registry.example.com`,
		Args:    rangeArgs(1, 1, "one registry host"),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := args[0]
			if strings.TrimSpace(user) == "" {
				return usagef("give the user name with -u USER (for a token, the user name the registry expects with it)")
			}
			password, err := a.readPassword(passwordStdin)
			if err != nil {
				return err
			}
			if password == "" {
				// docker login refuses it too ("Password Required"): an
				// empty password is never what the registry wants, and
				// storing it would break every later pull and push.
				from := "at the prompt"
				if passwordStdin {
					from = "on standard input (--password-stdin)"
				}
				return usagef("the password given %s is empty: give the password or token; nothing was checked or stored", from)
			}
			c := a.hostsConfig(false)
			secrets.addCredentials(user, password)
			c.Credentials, c.RegistryToken = imageservice.AuthConfigCredentials(imageservice.AuthConfig{Username: user, Password: password})
			hosts := imageservice.RegistryHosts(c)
			if err := imageservice.CheckLogin(cmd.Context(), hosts, registry); err != nil {
				return err
			}
			if err := dockercreds.Save("", registry, user, password); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password (or token) from standard input")
	return cmd
}

// maxPasswordBytes bounds what --password-stdin reads (registry tokens
// are a few KiB).
const maxPasswordBytes = 64 << 10

// readPassword reads the password from stdin, or prompts on a terminal.
func (a *app) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(a.stdin, maxPasswordBytes+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxPasswordBytes {
			return "", usagef("standard input holds more than %s: --password-stdin reads one password or token", sizeText(maxPasswordBytes))
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := readPassword(f, a.stderr, "Password: ")
		return string(b), err
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("no password: use --password-stdin or a terminal")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "logout REGISTRY",
		Short:   "Remove a registry's stored credentials",
		Example: `  ctrpush logout registry.example.com`,
		Args:    rangeArgs(1, 1, "one registry host"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := dockercreds.Erase("", args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", args[0])
			return nil
		},
	}
}
