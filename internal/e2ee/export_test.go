package e2ee

// The deterministic forms of the functions that draw random IVs and keys,
// for the test vectors, and the key derivation without its floor on
// iterations, so that the vectors' backup stays fast under -race. They
// exist only in test builds.
var (
	SealEnvelopeWith         = sealEnvelope
	EncryptMessageWithIV     = encryptMessage
	DeriveBackupKeyForTest   = deriveBackupKey
	SealIdentityBackupWithIV = sealIdentityBackup
	SealRoomKeyBackupWithIV  = sealRoomKeyBackup
	IdentityBackupPlaintext  = identityBackupPlaintext
)
