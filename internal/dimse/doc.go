// Package dimse implements the DICOM Upper Layer protocol (PS3.8) and the
// DIMSE-C services radflow needs (PS3.7): a Storage and Verification SCP
// (Server) and a Storage/Verification SCU (Client). It is radflow's own code;
// no third-party DICOM networking library is used.
//
// # API
//
//	srv, _ := dimse.NewServer(dimse.Config{AETitle: "RADFLOW"}, handler)
//	go srv.ListenAndServe(":11112")
//	defer srv.Shutdown(ctx)
//
// handler implements StoreHandler: Store(ctx, *StoreRequest) (status, err) is
// called once the whole data set of a C-STORE has been streamed to a temp
// file (StoreRequest.DataSetPath, bytes exactly as received in the
// context's transfer syntax), or into memory (StoreRequest.DataSet) when
// it fits Config.MemoryDataSetLimit. StoreRequest.WritePart10File / WritePart10
// add preamble, "DICM" and file meta. Handler errors map to statuses:
// ErrOutOfResources → A700, ErrDataSetMismatch → A900, ErrCannotUnderstand
// → C000, ErrNotAuthorized → 0124, other → 0110. C-ECHO is answered by
// the package.
//
//	cl, _ := dimse.Dial(ctx, "pacs:104", dimse.ClientConfig{CalledAETitle: "PACS"}, contexts)
//	status, err := cl.StoreFile(ctx, "ct.dcm")  // no transcoding: ErrNoPresentationContext
//	cl.Release(ctx)
//
// DICOM TLS (PS3.15 B.9): Config.TLSConfig / ClientConfig.TLSConfig (built
// by package tlsconfig) wrap each connection in TLS before the
// A-ASSOCIATE-RQ; with mutual TLS the verified client certificate is
// AssociationInfo.PeerCertificate and StoreRequest.PeerCertificate.
// Config.CallingAETitlesByCalledAE and Config.AcceptAssociation add
// per-called-AE allow-lists and an identity hook to the association policy.
//
// # State machine (PS3.8 9.2)
//
// Each association runs on one goroutine that reads PDUs; writes are
// serialised so that an A-ABORT can be sent from elsewhere (context
// cancellation, Server.Shutdown). States used:
//
//	Sta1  idle
//	Sta2  acceptor, transport open; ARTIM (Config.AssociationTimeout,
//	      default 10 s, from connect, TLS handshake included) runs until
//	      the whole A-ASSOCIATE-RQ is in; expiry closes the transport
//	Sta3  acceptor evaluates the RQ → A-ASSOCIATE-AC (Sta6) or -RJ (Sta13)
//	Sta5  requestor, A-ASSOCIATE-RQ sent, waiting AC/RJ (ARTIM)
//	Sta6  established: P-DATA-TF both ways; each PDU must arrive within
//	      IdleTimeout (SCP) / ResponseTimeout (SCU), else A-ABORT
//	Sta7  requestor sent A-RELEASE-RQ, waits RP (ARTIM); late P-DATA is
//	      discarded, a colliding A-RELEASE-RQ is answered
//	Sta13 RP/RJ/ABORT sent; ARTIM runs until the peer closes
//
// A PDU that is not valid in the current state, an unknown PDU type, or a
// malformed length gives A-ABORT (source service-provider, reason 2, 1 or 6)
// and the transport is closed. A-ABORT from the peer ends the association;
// a partially received data set is deleted and never reaches the handler.
//
// # Limits
//
// Config.MaxAssociations counts established associations only; an RQ
// beyond it is answered A-ASSOCIATE-RJ rejected-transient, local limit
// exceeded (logged as a warning). Connections holding no association (TLS
// handshake, Sta2, Sta3, Sta13) are bounded separately by
// Config.MaxPendingConnections (default max(64, 4×MaxAssociations)); when
// that is full a new connection closes the oldest one that is only
// waiting, so idle sockets cannot keep SCUs out (rate-limited warning).
// Shutdown closes waiting connections at once. A C-STORE's temp file is
// removed before its C-STORE-RSP is written.
//
// PDU lengths are validated before any allocation: A-ASSOCIATE PDUs are
// capped at 256 KiB, P-DATA-TF at the Maximum Length we advertised
// (Config.MaxPDULength, default 256 KiB), PDV items at their PDU, command
// sets at 64 KiB. Data set PDVs are streamed to disk, never buffered whole.
// Outgoing PDVs are sized to the peer's Maximum Length; an odd-length data
// set is padded with one zero byte. Operations are not interleaved
// (asynchronous operations window 1/1).
//
// It owns: PDU encoding, association negotiation and policies (AE titles,
// association limit, presentation contexts), C-ECHO, C-STORE, minimal Part 10
// file meta read/write. It does not own: parsing data sets (package dicom),
// storage layout or indexing of received instances (the caller's handler),
// C-FIND/C-MOVE/C-GET, building TLS configurations or mapping
// certificates to identities (packages tlsconfig, auth), transcoding.
package dimse
