package protocol

import (
	"crypto/sha256"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of the pre-shared key (data-plane spec 3.5).
const (
	PSKLength        = 32
	Argon2Iterations = 3
	Argon2MemoryKiB  = 64 * 1024
	Argon2Lanes      = 1
)

// DerivePSK is argon2id(UTF-8 password, salt=SHA-256(UTF-8 nodeID), t=3, m=64 MiB, p=1) -> 32
// bytes. It costs about 0.1 s of CPU and 64 MiB of memory: derive once and cache.
func DerivePSK(password, nodeID string) []byte {
	salt := sha256.Sum256([]byte(nodeID))
	return argon2.IDKey([]byte(password), salt[:], Argon2Iterations, Argon2MemoryKiB, Argon2Lanes, PSKLength)
}
