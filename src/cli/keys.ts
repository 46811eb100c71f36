import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openKeyring } from '../compose.ts';
import type { Config } from '../config/config.ts';
import { rewrapResource } from '../crypto/envelope.ts';
import { existingStorage } from '../store/open.ts';
import { CliError, openStore, recordOperatorEvent } from './audit.ts';

/** Key changes are security events: each leaves an AuditEvent in the chain (when data exists). */
async function auditKeyChange(config: Config, command: string, description: string): Promise<void> {
  const s = await existingStorage(config);
  if (!s) return;
  try {
    await recordOperatorEvent(config, s, {
      command,
      type: { code: '110137', display: 'User Security Attributes Changed' },
      action: 'U',
      object: 'keyring',
      description,
    });
  } finally {
    await s.close();
  }
}

function keyring(config: Config) {
  if (config.keyring.kind !== 'file') throw new CliError('the keyring comes from HEARTH_KEYRING: rotate it where that secret is kept');
  return commandKeyring(config);
}

/**
 * The keyring an operator command works with: made here when no data exists yet (as the first
 * start would), never anew over existing data — on MongoDB the data is elsewhere, so never there.
 */
export function commandKeyring(config: Config) {
  const hasData = config.mongodb !== undefined || existsSync(join(config.dataDir, 'hearth.db'));
  return openKeyring(config, !hasData);
}

/** `hearth keys rotate`: a new KEK version, current for new writes (a running server picks it up within a second). */
export async function keysRotate(config: Config): Promise<string> {
  const v = keyring(config).rotate();
  await auditKeyChange(config, 'keys rotate', `key-encryption key version ${v} created and made current`);
  return `key version ${v} is now current for new writes; run 'hearth keys rewrap' to move existing data keys to it\n`;
}

/** `hearth keys rewrap`: re-wraps every data key not under the current KEK, in small transactions, with progress. */
export async function keysRewrap(config: Config, progress: (line: string) => void): Promise<string> {
  const keys = keyring(config);
  const s = await openStore(config);
  try {
    const current = keys.currentKekId();
    let last = -1;
    const n = await s.keys.rewrapAll(
      current,
      (type, id, version, body) => rewrapResource(keys, type, id, version, body),
      (done, total) => {
        const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
        if (pct !== last) {
          last = pct;
          const bar = '#'.repeat(Math.floor(pct / 5)).padEnd(20, '.');
          progress(`\rrewrap [${bar}] ${pct}% (${done}/${total})`);
        }
      },
    );
    progress('\n');
    // (a count of versions: those one transaction wrote share one data key, re-wrapped once)
    await auditKeyChange(config, 'keys rewrap', `re-wrapped the data keys of ${n} resource versions under ${current}`);
    return `re-wrapped the data keys of ${n} resource versions under ${current}\n`;
  } finally {
    await s.close();
  }
}

/** `hearth keys retire <version>`: refused while any stored version still uses it. */
export async function keysRetire(config: Config, version: string | undefined): Promise<string> {
  if (!version || !/^[1-9]\d{0,5}$/.test(version)) throw new CliError('usage: hearth keys retire <version>');
  const keys = keyring(config);
  const s = await openStore(config);
  try {
    const used = await s.keys.countKeyUse(`local:${version}`);
    if (used > 0) throw new CliError(`key version ${version} still wraps the data keys of ${used} resource versions: run 'hearth keys rewrap' first`);
  } finally {
    await s.close();
  }
  keys.retire(Number(version));
  await auditKeyChange(config, 'keys retire', `key-encryption key version ${version} retired`);
  return `key version ${version} retired\n`;
}

export function keysList(config: Config): string {
  return `${keyring(config)
    .versions()
    .map((v) => `${v.version}${v.current ? ' current' : ''}${v.retired ? ' retired' : ''}`)
    .join('\n')}\n`;
}
