// Package registry is the router's table of who is logged in as what: the
// login(id, conn), logout(conn) and send(id) lookups of the original
// router, as two sharded maps (id -> conns and conn -> ids).
//
// One conn may hold several ids and one id may be held by many conns.
// Lookup may run concurrently with anything. Login, Logout and
// LogoutGateway must not run concurrently for the same conn: the router
// applies each gateway's updates in order from one goroutine.
package registry
