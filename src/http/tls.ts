import { createPrivateKey, type KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Config, ConfigError } from '../config/config.ts';

/** What the HTTPS server is given: certificate, key, and the protocol floor and cipher list. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly minVersion: 'TLSv1.2';
  readonly ciphers: string;
  readonly honorCipherOrder: true;
  /** SHA-256 fingerprint of the certificate, for the log and for clients that pin it */
  readonly fingerprint: string;
  /** whether this start made the certificate (a development certificate) */
  readonly created: boolean;
}

// TLS 1.2 with forward-secret AEAD suites only (TLS 1.3's suites are all AEAD and set apart by Node).
// See: https://www.rfc-editor.org/rfc/rfc9325#section-4.2 (recommended cipher suites)
const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

const DEV_CERT = 'dev-cert.pem';
const DEV_KEY = 'dev-key.pem';

/**
 * The certificate and key of HEARTH_TLS_CERT/HEARTH_TLS_KEY, or else the development certificate
 * under `<data dir>/tls/`, made on first start with @peculiar/x509 (ECDSA P-256, a year, for
 * localhost, 127.0.0.1 and ::1). Undefined when TLS is off.
 */
export async function tlsMaterial(config: Config): Promise<TlsMaterial | undefined> {
  const tls = config.tls;
  if (tls.kind === 'off') return undefined;
  const certPath = tls.kind === 'files' ? tls.cert : join(config.dataDir, 'tls', DEV_CERT);
  const keyPath = tls.kind === 'files' ? tls.key : join(config.dataDir, 'tls', DEV_KEY);
  let created = false;
  if (tls.kind === 'development' && !(existsSync(certPath) && existsSync(keyPath))) {
    const made = await developmentCertificate();
    mkdirSync(dirname(certPath), { recursive: true, mode: 0o700 });
    writeFileSync(keyPath, made.key, { mode: 0o600 });
    writeFileSync(certPath, made.cert);
    created = true;
  }
  const cert = readPem(certPath, 'HEARTH_TLS_CERT', 'a PEM certificate');
  const key = readPem(keyPath, 'HEARTH_TLS_KEY', 'a PEM private key');
  let certificate: X509Certificate;
  let privateKey: KeyObject;
  try {
    certificate = new X509Certificate(cert);
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError([{ name: 'HEARTH_TLS_CERT', message: `${certPath} and ${keyPath} must hold a PEM certificate and its PEM private key` }]);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError([{ name: 'HEARTH_TLS_KEY', message: `${keyPath} is not the private key of the certificate in ${certPath}` }]);
  }
  return { cert, key, minVersion: 'TLSv1.2', ciphers: CIPHERS, honorCipherOrder: true, fingerprint: certificate.fingerprint256, created };
}

function readPem(path: string, setting: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ name: setting, message: `cannot read ${what} from ${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})` }]);
  }
}

async function developmentCertificate(): Promise<{ cert: string; key: string }> {
  // Loaded only to make the certificate: @peculiar/x509 resolves its parts with tsyringe, which
  // needs the reflect-metadata polyfill first.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    name: 'CN=Hearth development certificate',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * 24 * 3600 * 1000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: certificate.toString('pem'), key };
}
