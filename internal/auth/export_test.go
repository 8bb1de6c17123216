package auth

// SetBeforeVerify makes s call f just before each password verification of
// a login, so that a test can count the verifications and hold them.
func SetBeforeVerify(s *Service, f func()) { s.beforeVerify = f }

// SetTicketLimits changes s's limits on pending tickets: per session, per
// user, and in all, so that a test can fill the table quickly.
func SetTicketLimits(s *Service, perSession, perUser, total int) {
	s.tickets.perSession, s.tickets.perUser, s.tickets.max = perSession, perUser, total
}
