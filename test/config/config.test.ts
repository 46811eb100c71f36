import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { JWKS_FILE } from '../helpers/app.ts';

describe('loadConfig', () => {
  it('has safe zero-setup defaults', () => {
    const c = loadConfig({});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.dataDir).toMatch(/\/data$/);
    expect(c.baseUrl).toBe('https://127.0.0.1:8080/fhir');
    expect(c.tls).toEqual({ kind: 'development' });
    expect(c.rateLimit).toEqual({ perSecond: 100, byRole: {}, redisUrl: undefined });
    expect(c.corsOrigins).toEqual([]);
    expect(c.logLevel).toBe('info');
    expect(c.search).toEqual({ defaultCount: 20, maxCount: 500, decryptBound: 10_000 });
    expect(c.updateCreate).toBe(false);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.search)).toBe(true);
  });

  it('derives the base URL from host and port, bracketing IPv6', () => {
    expect(loadConfig({ HEARTH_PORT: '9000' }).baseUrl).toBe('https://127.0.0.1:9000/fhir');
    expect(loadConfig({ HEARTH_HOST: '::1' }).baseUrl).toBe('https://[::1]:8080/fhir');
    expect(loadConfig({ HEARTH_BASE_URL: 'https://fhir.example.org/r4/' }).baseUrl).toBe('https://fhir.example.org/r4');
  });

  it.each([
    ['HEARTH_PORT', '80a', 'must be a whole number from 0 to 65535'],
    ['HEARTH_PORT', '70000', 'must be a whole number from 0 to 65535'],
    ['HEARTH_PORT', '-1', 'must be a whole number'],
    ['HEARTH_HOST', '10.1.2', 'must be an IP address'],
    ['HEARTH_AUTH_ISSUER', 'http://idp.example.org', 'must be an https URL (http only on loopback)'],
    ['HEARTH_AUTH_ISSUER', 'not a url', 'must be the issuer\'s URL'],
    ['HEARTH_AUTH_JWKS', '/nonexistent/jwks.json', 'cannot read JWKS file'],
    ['HEARTH_AUTH_JWKS', 'http://idp.example.org/jwks', 'must be an https URL'],
    ['HEARTH_AUTH_ISSUERS', 'nope', 'must be a JSON list'],
    ['HEARTH_AUTH_ISSUERS', '[]', 'must be a non-empty JSON list'],
    ['HEARTH_AUTH_ISSUERS', '[{"issuer":"https://a"}]', 'entry 0 must have string "issuer" and "jwks"'],
    ['HEARTH_AUTH_ISSUERS', '[{"issuer":"https://a","jwks":"https://a/j","extra":1}]', 'entry 0 has unknown field "extra"'],
    ['HEARTH_AUTH_CLOCK_SKEW', '600', 'must be a whole number from 0 to 300'],
    ['HEARTH_AUTH_MAX_TOKEN_LIFETIME', '10', 'must be a whole number from 60'],
    ['HEARTH_AUTH_ROLE_CLAIM', 'has space', 'must be a claim name'],
    ['HEARTH_AUTH_RELATIONSHIP', 'on', 'must be "true" or "false"'],
    ['HEARTH_AUTH_RELATIONSHIP_PARAM', 'Bad Param', 'must be a search parameter code'],
    ['HEARTH_HOST', 'example.org', 'must be an IP address or "localhost"'],
    ['HEARTH_BASE_URL', 'not a url', 'must be an absolute http(s) URL'],
    ['HEARTH_BASE_URL', 'ftp://x/fhir', 'must use http or https'],
    ['HEARTH_BASE_URL', 'http://x/fhir?a=1', 'must not carry a query'],
    ['HEARTH_LOG_LEVEL', 'loud', 'must be one of fatal, error, warn, info, debug, trace, silent'],
    ['HEARTH_DATA_DIR', '  ', 'must not be empty'],
    ['HEARTH_BODY_LIMIT', '10', 'must be a whole number from 1024'],
    ['HEARTH_MAX_JSON_DEPTH', '1000', 'must be a whole number from 8 to 256'],
    ['HEARTH_SEARCH_MAX_COUNT', '0', 'must be a whole number from 1'],
    ['HEARTH_UPDATE_CREATE', 'yes', 'must be "true" or "false"'],
    ['HEARTH_AUDIT_INDEX_WAIT_MS', '0', 'must be a whole number from 1 to 600000'],
    ['HEARTH_AUDIT_INDEX_WAIT_MS', '5s', 'must be a whole number from 1 to 600000'],
    ['HEARTH_CORS_ORIGINS', 'https://app.example.org/', 'must be scheme://host[:port] with no path or trailing slash'],
    ['HEARTH_CORS_ORIGINS', '*', 'must be scheme://host[:port]'],
    ['HEARTH_CORS_ORIGINS', 'https://a.example, ftp://b.example', 'got "ftp://b.example"'],
    ['HEARTH_HEADERS_TIMEOUT_MS', '5', 'must be a whole number from 100'],
    ['HEARTH_MAX_CONNECTIONS_PER_ADDRESS', '0', 'must be a whole number from 1'],
    ['HEARTH_PROT', '8080', 'unknown setting'],
  ])('%s=%s is rejected: %s', (name, value, message) => {
    try {
      loadConfig({ [name]: value });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problem = (err as ConfigError).problems.find((p) => p.name === name);
      expect(problem?.message).toContain(message);
      expect((err as Error).message).toContain(name);
    }
  });

  it('reports every mistake at once', () => {
    try {
      loadConfig({ HEARTH_PORT: 'x', HEARTH_LOG_LEVEL: 'y', HEARTH_SEARCH_DEFAULT_COUNT: '600' });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems.map((p) => p.name)).toEqual([
        'HEARTH_PORT',
        'HEARTH_LOG_LEVEL',
        'HEARTH_SEARCH_DEFAULT_COUNT',
      ]);
    }
  });

  it('may listen on every interface now that every request is authorized, given the public base URL', () => {
    expect(loadConfig({ HEARTH_HOST: '0.0.0.0', HEARTH_BASE_URL: 'https://fhir.example.org/fhir' }).host).toBe('0.0.0.0');
    for (const host of ['0.0.0.0', '::']) {
      expect(() => loadConfig({ HEARTH_HOST: host })).toThrow(
        `HEARTH_BASE_URL: is required with HEARTH_HOST=${host}: the public FHIR base URL clients use (and tokens name as their audience)`,
      );
    }
  });

  it('takes one issuer or a list, with JWKS from a file or an https URL', async () => {
    const one = loadConfig({ HEARTH_AUTH_ISSUER: 'https://idp.example.org/realms/x', HEARTH_AUTH_JWKS: JWKS_FILE });
    expect(one.auth.issuers).toHaveLength(1);
    expect(one.auth.issuers[0].jwks.kind).toBe('file');
    const many = loadConfig({
      HEARTH_AUTH_ISSUER: 'https://a.example.org',
      HEARTH_AUTH_JWKS: 'https://a.example.org/jwks',
      HEARTH_AUTH_ISSUERS: JSON.stringify([
        { issuer: 'https://b.example.org', jwks: 'https://b.example.org/jwks', token_endpoint: 'https://b.example.org/token' },
        { issuer: 'http://127.0.0.1:9999', jwks: 'http://127.0.0.1:9999/jwks' },
      ]),
    });
    expect(many.auth.issuers.map((i) => i.issuer)).toEqual(['https://a.example.org', 'https://b.example.org', 'http://127.0.0.1:9999']);
    expect(many.auth.issuers[1].tokenEndpoint).toBe('https://b.example.org/token');
    expect(() => loadConfig({ HEARTH_AUTH_ISSUER: 'https://a.example.org' })).toThrow('HEARTH_AUTH_ISSUER and HEARTH_AUTH_JWKS go together');
    expect(() =>
      loadConfig({
        HEARTH_AUTH_ISSUER: 'https://a.example.org',
        HEARTH_AUTH_JWKS: 'https://a.example.org/jwks',
        HEARTH_AUTH_ISSUERS: JSON.stringify([{ issuer: 'https://a.example.org', jwks: 'https://a.example.org/jwks' }]),
      }),
    ).toThrow('each issuer may be trusted only once');
  });

  it('ignores environment variables that are not Hearth settings', () => {
    expect(() => loadConfig({ PATH: '/bin', HOME: '/root' })).not.toThrow();
  });
});
