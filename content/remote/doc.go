// Package remote pulls images from OCI registries into a content store.
//
// Pull resolves a reference once (HEAD, then GET when the registry gives no
// digest), pins the digest it got, fetches the root manifest or index,
// selects the platform's manifest and streams the config and layers into
// content Writers, several at a time. Every blob is verified by the store
// before it becomes visible; an interrupted blob is resumed by the next pull
// with an HTTP Range request.
//
// Trust rules: credentials come from the docker config.json chain
// (authn.DefaultKeychain) and go only to the registry host (and to token
// servers listed in RegistryOptions.AuthHosts). Plain HTTP is used for
// loopback registries when they do not speak TLS, and for other hosts only
// when PlainHTTP or InsecureRegistries says so.
package remote
