// No Docker engine runs where this project is checked: the container files are checked
// statically — their shape, the settings they name, and the image's health check run for real.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SETTINGS } from '../src/config/config.ts';
import { tempDir } from './helpers/app.ts';
import { startServer, stopServer } from './helpers/server.ts';

const run = promisify(execFile);

interface Service {
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: unknown;
  volumes?: string[];
}
const dockerfile = readFileSync(new URL('../docker/Dockerfile', import.meta.url), 'utf8');
const compose = parse(readFileSync(new URL('../docker/compose.yaml', import.meta.url), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};

describe('docker/Dockerfile', () => {
  const env = new Map([...dockerfile.matchAll(/\b(HEARTH_[A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2].replace(/\\$/, '')]));

  it('listens on every interface with no default base URL (the server then demands HEARTH_BASE_URL), keys on a volume of their own', () => {
    expect(env.get('HEARTH_HOST')).toBe('0.0.0.0');
    expect(env.has('HEARTH_BASE_URL')).toBe(false);
    expect(env.get('HEARTH_KEYRING_FILE')).toMatch(/^\/var\/lib\/hearth-keys\//);
    expect(env.get('HEARTH_AUDIT_SIGNING_KEY')).toMatch(/^\/var\/lib\/hearth-keys\//);
    expect(env.get('HEARTH_DATA_DIR')).toBe('/var/lib/hearth');
    expect(dockerfile).toContain('VOLUME ["/var/lib/hearth", "/var/lib/hearth-keys"]');
    for (const name of env.keys()) expect(Object.keys(SETTINGS), name).toContain(name);
  });

  it('its health check asks the configured port, and answers 0 against a running server', async () => {
    const check = /HEALTHCHECK .* CMD node -e "(.*)"$/m.exec(dockerfile)?.[1];
    expect(check).toContain('process.env.HEARTH_PORT');
    const server = await startServer({ HEARTH_DATA_DIR: tempDir() });
    try {
      const port = new URL(server.base).port;
      const ok = await run(process.execPath, ['-e', check!], { env: { HEARTH_PORT: port, HEARTH_TLS: 'off' } });
      expect(ok.stderr).toBe('');
      const down = await run(process.execPath, ['-e', check!], { env: { HEARTH_PORT: '9', HEARTH_TLS: 'off' } }).catch((e) => e);
      expect(down.code).toBe(1);
    } finally {
      await stopServer(server);
    }
  });
});

describe('docker/compose.yaml', () => {
  const s = compose.services;

  it('runs a three-member replica set with keyfile authentication', () => {
    const members = ['mongo1', 'mongo2', 'mongo3'];
    for (const m of members) {
      expect(s[m].command).toEqual(['mongod', '--replSet', 'rs0', '--bind_ip_all', '--keyFile', '/keyfile/mongo-keyfile']);
      expect(s[m].volumes).toContain('keyfile:/keyfile:ro');
    }
    const initiate = s['rs-init'].entrypoint!.join('\n');
    for (const m of members) expect(initiate).toContain(`host: "${m}:27017"`);
  });

  it('runs hearth mongo init before Hearth, and Hearth connects as a user with the application role only', () => {
    expect(s['hearth-init'].entrypoint!.join('\n')).toContain('node src/cli/main.ts mongo init');
    expect(s['hearth-init'].entrypoint!.join('\n')).toContain('roles: [\'hearthApp\']');
    expect(s.hearth.depends_on).toEqual({ 'hearth-init': { condition: 'service_completed_successfully' } });
    const uri = s.hearth.environment!.HEARTH_MONGODB_URI;
    expect(uri).toMatch(/^mongodb:\/\/hearth:\$\{HEARTH_DB_PASSWORD\}@mongo1,mongo2,mongo3\/hearth\?replicaSet=rs0$/);
    expect(s.hearth.environment!.HEARTH_BASE_URL).toMatch(/^\$\{HEARTH_BASE_URL:\?/);
    expect(s.hearth.volumes).toEqual(['hearth-data:/var/lib/hearth', 'hearth-keys:/var/lib/hearth-keys']);
    for (const svc of ['hearth', 'hearth-init']) for (const name of Object.keys(s[svc].environment ?? {})) {
      if (name.startsWith('HEARTH_') && name !== 'HEARTH_DB_PASSWORD') expect(Object.keys(SETTINGS), name).toContain(name);
    }
  });
});
