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
	var user, argPassword string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login -u USER [--password-stdin] REGISTRY",
		Short: "Log in to a registry, storing the credentials where docker does",
		Long: `Check the credentials against REGISTRY and store them in $DOCKER_CONFIG/config.json
(default ~/.docker), in its credential store or helper when one is configured:
the same place 'docker login' writes, so both tools share them.

The password (or token) comes from standard input with --password-stdin,
else from a prompt on the terminal; never from the command line, where ps
and the shell history would show it (docker's -p is refused, saying so).
An empty user or password is refused before anything is checked or stored.`,
		Example: `  echo "$TOKEN" | ctrpush login -u ci --password-stdin registry.example.com
  ctrpush login -u alice registry.example.com   # asks for the password`,
		Args: rangeArgs(1, 1, "one registry host"),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := args[0]
			if cmd.Flags().Changed("password") {
				what := "-p/--password: ctrpush takes no password"
				if argPassword == "" {
					what = `-p/--password "": password required, and ctrpush takes none`
				}
				return usagef("%s on the command line (ps and the shell history would show it): pipe the password or token to --password-stdin, or leave both out to be asked for it; nothing was checked or stored", what)
			}
			if strings.TrimSpace(user) == "" {
				return usagef("user name required: give it with -u USER (for a token, the user name the registry expects with it); nothing was checked or stored")
			}
			password, from, err := a.readPassword(passwordStdin)
			if err != nil {
				return err
			}
			if password == "" {
				// docker login refuses it too ("Password Required"): an
				// empty password is never what the registry wants, and
				// storing it would break every later pull and push.
				return usagef("password required: the password given %s is empty; give the password or token (echo \"$TOKEN\" | ctrpush login -u USER --password-stdin REGISTRY); nothing was checked or stored", from)
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
	// docker login's -p, known only to be refused with the way on.
	cmd.Flags().StringVarP(&argPassword, "password", "p", "", "refused: use --password-stdin")
	_ = cmd.Flags().MarkHidden("password")
	return cmd
}

// maxPasswordBytes bounds what --password-stdin reads (registry tokens
// are a few KiB).
const maxPasswordBytes = 64 << 10

// readPassword reads the password from stdin, or prompts on a terminal;
// from says where it came from, for the error about an empty one.
func (a *app) readPassword(fromStdin bool) (password, from string, err error) {
	if fromStdin {
		from = "on standard input (--password-stdin)"
		b, err := io.ReadAll(io.LimitReader(a.stdin, maxPasswordBytes+1))
		if err != nil {
			return "", from, err
		}
		if len(b) > maxPasswordBytes {
			return "", from, usagef("standard input holds more than %s: --password-stdin reads one password or token", sizeText(maxPasswordBytes))
		}
		return strings.TrimRight(string(b), "\r\n"), from, nil
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := readPassword(f, a.stderr, "Password: ")
		return string(b), "at the prompt", err
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", "", usagef("password required: standard input is no terminal to ask on and holds nothing; pipe the password or token to --password-stdin")
	}
	return strings.TrimRight(line, "\r\n"), "on the first line of standard input", nil
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
