import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';

describe('loadConfig', () => {
  it('has safe zero-setup defaults', () => {
    const c = loadConfig({});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.dataDir).toMatch(/\/data$/);
    expect(c.baseUrl).toBe('http://127.0.0.1:8080/fhir');
    expect(c.logLevel).toBe('info');
    expect(c.search).toEqual({ defaultCount: 20, maxCount: 500 });
    expect(c.updateCreate).toBe(false);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.search)).toBe(true);
  });

  it('derives the base URL from host and port, bracketing IPv6', () => {
    expect(loadConfig({ HEARTH_PORT: '9000' }).baseUrl).toBe('http://127.0.0.1:9000/fhir');
    expect(loadConfig({ HEARTH_HOST: '::1' }).baseUrl).toBe('http://[::1]:8080/fhir');
    expect(loadConfig({ HEARTH_BASE_URL: 'https://fhir.example.org/r4/' }).baseUrl).toBe('https://fhir.example.org/r4');
  });

  it.each([
    ['HEARTH_PORT', '80a', 'must be a whole number from 0 to 65535'],
    ['HEARTH_PORT', '70000', 'must be a whole number from 0 to 65535'],
    ['HEARTH_PORT', '-1', 'must be a whole number'],
    ['HEARTH_HOST', '0.0.0.0', 'must be a loopback address'],
    ['HEARTH_HOST', '10.1.2.3', 'must be a loopback address'],
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

  it('ignores environment variables that are not Hearth settings', () => {
    expect(() => loadConfig({ PATH: '/bin', HOME: '/root' })).not.toThrow();
  });
});
