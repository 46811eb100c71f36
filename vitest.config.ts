import { defineConfig } from 'vitest/config';

/**
 * The end-to-end suites that run a second time with the app on MongoDB (a wire-protocol server
 * the tests start, or HEARTH_TEST_MONGODB_URI): interactions, search, authorization, audit.
 */
const ON_BOTH_STORES = [
  'test/http/crud.test.ts',
  'test/http/search.test.ts',
  'test/http/conformance.test.ts',
  'test/http/auth.test.ts',
  'test/http/write-compartment.test.ts',
  'test/http/fhir-kit-client.test.ts',
  'test/fhir/decimals.test.ts',
  'test/http/bundles.test.ts',
  'test/audit/auditor.test.ts',
  'test/audit/disclosures.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'mongodb', include: ON_BOTH_STORES, env: { HEARTH_TEST_STORE: 'mongodb' } } },
    ],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/types/**'],
      reporter: ['text-summary'],
      thresholds: { lines: 80, branches: 70 },
    },
  },
});
