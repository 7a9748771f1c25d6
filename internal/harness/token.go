package harness

// TokenOf is the token a test's player brings to every call. A client
// draws its own (a page does), so the same player on two connections (a
// reload, a failover) holds the same one, and a test need not carry the
// token a join returned.
func TokenOf(player string) string { return "token-of-" + player + "-0123456789abcdef" }
