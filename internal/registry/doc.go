// Package registry speaks the OCI distribution protocol to one repository
// of one registry: whether a blob or manifest exists, cross-repository
// mounts, blob uploads, manifest PUTs, tags, resolving and fetching for a
// pull, and the login check. It is the only package of ctrpush that builds
// registry requests.
//
// Everything goes through one send path (Repository.send): the host's
// hosts.toml headers and the authorizer apply to the registry host only —
// never to an upload Location or a redirect on another host (a signed
// storage URL) — and one auth challenge per request is answered.
//
// Failures are typed: *Error is an answer from the registry (status, the
// registry's error code, Retry-After), *TransportError a request that got
// no answer. RetryPolicy says, as data, which of them are worth another
// attempt and how long to wait; Repository methods that change the
// registry retry by it. Bytes sent are checked against their digest as they
// stream (internal/verify), so a corrupt local copy is never committed.
//
// Where endpoints, TLS and credentials come from is containerd's
// docker.RegistryHosts (hosts.toml through RegistryHosts).
package registry
