import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AUTH_KEK, type KeyProvider } from './keyring.ts';

/** Seals small secrets (a user's TOTP secret) for the authorization server's storage. */
export interface SecretBox {
  /** base64(nonce | ciphertext | tag), bound to `context` (AAD: whose secret it is) */
  seal(plain: string, context: string): string;
  /** the secret; throws when the ciphertext was altered or moved to another context */
  open(sealed: string, context: string): string;
}

/** AES-256-GCM under the keyring's authorization-server key (AUTH_KEK), a fresh nonce each time. */
export function secretBox(keys: KeyProvider): SecretBox {
  const key = () => keys.kek(AUTH_KEK);
  return {
    seal(plain, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key(), iv);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64');
    },
    open(sealed, context) {
      const raw = Buffer.from(sealed, 'base64');
      if (raw.length < 28) throw new Error('sealed secret too short');
      const decipher = createDecipheriv('aes-256-gcm', key(), raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
    },
  };
}
