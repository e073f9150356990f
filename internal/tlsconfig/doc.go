// Package tlsconfig builds radflow's TLS configurations: the HTTPS
// listener, DICOM TLS for the DIMSE SCP and SCU (PS3.15 B.9, BCP 195), and
// development certificates.
//
//	srvTLS, err := tlsconfig.Server(tlsconfig.ServerOptions{
//		CertFile: "server.pem", KeyFile: "server-key.pem",
//		ClientCAFile: "ca.pem", ClientAuth: tlsconfig.ClientAuthRequire, // mutual TLS
//	})
//	httpSrv.TLSConfig = srvTLS; httpSrv.ListenAndServeTLS("", "")
//	dimse.Config{TLSConfig: srvTLS, ...}
//	cliTLS, err := tlsconfig.Client(tlsconfig.ClientOptions{CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem"})
//	files, err := tlsconfig.GenerateDev("certs", tlsconfig.DevOptions{})
//
// Every configuration requires TLS 1.2 or later with ECDHE + AEAD cipher
// suites for TLS 1.2 (TLS 1.3 suites are Go's, all AEAD); server
// certificates are re-read when their files change.
//
// It owns: tls.Config construction, certificate/CA file loading and
// reloading, and the development CA. It does not own: mapping client
// certificates to identities (package auth), listeners and servers
// (packages api, dimse, service), or production certificate issuance.
package tlsconfig
