package auth

// SetBeforeVerify makes s call f just before each password verification of
// a login, so that a test can count the verifications and hold them.
func SetBeforeVerify(s *Service, f func()) { s.beforeVerify = f }
