package dimse

import (
	"container/list"
	"net"
	"time"
)

// Connection accounting. Every accepted TCP connection has a connSlot. A
// connection that holds no association (TLS handshake and Sta2 before its
// A-ASSOCIATE-RQ, Sta3 while the RQ is evaluated, Sta13 after a rejection
// or release) is in Server.pending, bounded by Config.MaxPendingConnections;
// an accepted association (Sta6) leaves pending and is counted in
// Server.active, bounded by Config.MaxAssociations. So idle or slow
// connections never take association slots, and association-PDU buffers
// are held for at most MaxPendingConnections + MaxAssociations peers.
//
// When pending is full a new connection evicts the oldest pending one that
// is only waiting (for its RQ, or for the peer to close): a legitimate SCU
// sends its RQ right after connecting, so it is not the oldest waiter for
// long, while a flood of idle sockets only pushes out its own members.

// connSlot is one accepted connection's place in the server's accounting;
// its fields are guarded by Server.mu.
type connSlot struct {
	nc         net.Conn      // the raw TCP connection (closing it ends any TLS on top)
	elem       *list.Element // in Server.pending while not associated, else nil
	waiting    bool          // evictable: awaiting the RQ or the peer's close
	evicted    bool          // closed to make room (or by Shutdown)
	associated bool          // counted in Server.active
}

// shedLogEvery bounds how often shedding of pre-association connections is
// logged, so that a flood cannot flood the log too (Server.shedEvery).
const shedLogEvery = 10 * time.Second

// admitLocked registers a newly accepted connection, evicting the oldest
// waiting pending connection when the table is full; it returns nil (and
// the caller closes nc) when nothing could be evicted. s.mu is held.
func (s *Server) admitLocked(nc net.Conn) *connSlot {
	if s.pending.Len() >= s.cfg.MaxPendingConnections && !s.evictOldestLocked() {
		s.shedLocked()
		return nil
	}
	e := &connSlot{nc: nc, waiting: true}
	e.elem = s.pending.PushBack(e)
	return e
}

// evictOldestLocked closes the oldest waiting pending connection.
func (s *Server) evictOldestLocked() bool {
	for el := s.pending.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*connSlot); e.waiting {
			s.pending.Remove(el)
			e.elem, e.evicted = nil, true
			s.shedLocked() // logged before the peer can see its close
			e.nc.Close()
			return true
		}
	}
	return false
}

// shedLocked counts a connection closed for the pending limit. The first
// is logged at once; later ones are summed and logged at most every
// shedLogEvery (a timer reports what a burst left uncounted). No
// addresses are logged: a flood's are noise.
func (s *Server) shedLocked() {
	s.shed++
	wait := s.shedEvery - time.Since(s.shedLogged)
	switch {
	case wait <= 0:
		s.logShedLocked()
	case s.shedTimer == nil:
		s.shedTimer = time.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.shedTimer = nil
			s.logShedLocked()
		})
	}
}

func (s *Server) logShedLocked() {
	if s.shed == 0 {
		return
	}
	s.cfg.Logger.Warn("dimse: pre-association connection limit reached; closed idle connections",
		"closed", s.shed, "max_pending_connections", s.cfg.MaxPendingConnections)
	s.shed, s.shedLogged = 0, time.Now()
}

// claim marks e as no longer evictable (its A-ASSOCIATE-RQ has arrived and
// is being evaluated). It reports false when e was evicted first; its
// transport is closed then.
func (s *Server) claim(e *connSlot) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.waiting = false
	return !e.evicted
}

// wasEvicted reports whether e was closed to make room or by Shutdown.
func (s *Server) wasEvicted(e *connSlot) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.evicted
}

// tryAssociateLocked moves e from pending into the association table when
// there is room, reporting whether it did.
func (s *Server) tryAssociateLocked(e *connSlot) bool {
	if s.active >= s.cfg.MaxAssociations {
		return false
	}
	s.active++
	e.associated = true
	if e.elem != nil {
		s.pending.Remove(e.elem)
		e.elem = nil
	}
	return true
}

// wait puts e back among the evictable pending connections (Sta13: after
// A-ASSOCIATE-RJ or A-RELEASE-RP, waiting for the peer to close), giving
// back its association slot if it had one.
func (s *Server) wait(e *connSlot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dissociateLocked(e)
	if e.evicted {
		return
	}
	e.waiting = true
	if e.elem == nil {
		e.elem = s.pending.PushBack(e)
	}
}

// leave removes e from the accounting when its goroutine ends.
func (s *Server) leave(e *connSlot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dissociateLocked(e)
	if e.elem != nil {
		s.pending.Remove(e.elem)
		e.elem = nil
	}
}

// dissociateLocked gives back e's association slot, if it holds one.
func (s *Server) dissociateLocked(e *connSlot) {
	if e.associated {
		s.active--
		e.associated = false
	}
}

// closeWaitingLocked closes every waiting pending connection (Shutdown:
// they hold no association, so there is nothing to wait for).
func (s *Server) closeWaitingLocked() {
	for el := s.pending.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*connSlot); e.waiting {
			s.pending.Remove(el)
			e.elem, e.evicted = nil, true
			e.nc.Close()
		}
		el = next
	}
}
