import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientsAdd } from '../../src/cli/clients.ts';
import { usersAdd } from '../../src/cli/users.ts';
import type { Config } from '../../src/config/config.ts';
import { signToken, tempDir } from '../helpers/app.ts';
import { listeningApp } from '../helpers/listening.ts';
import { authorizationUrl, publicApp } from '../helpers/smart-app.ts';

// The sign-in pages in a real browser: Debian's headless Chromium (installed by npm's pretest,
// scripts/ensure-test-services.sh), driven by playwright-core — login, TOTP enrolment, patient
// picker, consent — with the pages' CSP in force (a style or form it blocked would show as a
// console error). Screenshots of each page go to HEARTH_TEST_ARTIFACTS (default: a
// hearth-test-artifacts folder in the system's temporary directory), never into the tree.

const CHROMIUM = '/usr/bin/chromium';
const available = spawnSync(CHROMIUM, ['--version']).status === 0;
const ARTIFACTS = process.env.HEARTH_TEST_ARTIFACTS ?? join(tmpdir(), 'hearth-test-artifacts');
const REDIRECT = 'https://app.example.org/callback';

describe.runIf(available)('the sign-in pages in headless Chromium', () => {
  let app: FastifyInstance;
  let config: Config;
  let browser: Browser;
  let origin: string;
  let base: string;
  let patientId: string;

  beforeAll(async () => {
    ({ app, config, origin, base } = await listeningApp());
    const admin = await signToken({ sub: 'ops', scope: 'system/*.cruds' }, { audience: base, lifetime: 600 });
    const made = await fetch(`${base}/Patient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Browserpatient', given: ['Ada'] }], birthDate: '1975-05-06' }),
    });
    patientId = ((await made.json()) as { id: string }).id;
    clientsAdd(config, { id: 'web-app', type: 'public', 'redirect-uri': REDIRECT, scope: 'user/*.rs launch/patient openid fhirUser', name: 'Web Chart' });
    const password = join(tempDir(), 'password');
    writeFileSync(password, 'grey-correct-horse-battery\n');
    await usersAdd(config, { username: 'dr.grey', role: 'provider', 'fhir-user': 'Practitioner/grey', 'password-file': password });
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('login → TOTP enrolment → patient picker → consent, then the code works for the app', async () => {
    const c = await publicApp(origin, 'web-app');
    const { url, verifier, state } = await authorizationUrl(c, { redirect: REDIRECT, aud: base, scope: 'user/*.rs launch/patient openid fhirUser' });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    // The app: its redirect URI is answered here, where the browser hands it the code.
    let callback = '';
    await page.route(`${REDIRECT}**`, async (route) => {
      callback = route.request().url();
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'back in the app' });
    });
    const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `sign-in-${name}.png`), fullPage: true });

    await page.goto(url.href);
    expect(await page.locator('h1').textContent()).toBe('Sign in');
    await shot('1-login');
    await page.getByLabel('User name').fill('dr.grey');
    await page.getByLabel('Password').fill('grey-correct-horse-battery');
    await page.getByRole('button', { name: 'Sign in' }).click();

    await page.waitForSelector('h1:text("Set up your second factor")');
    expect(await page.locator('.qr svg').count()).toBe(1);
    await shot('2-enrol');
    const key = (await page.locator('main code').first().textContent())!.trim();
    const code = new TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: Secret.fromBase32(key) }).generate();
    await page.getByLabel('Code').fill(code);
    await page.getByRole('button', { name: 'Verify and continue' }).click();

    await page.waitForSelector('h1:text("Allow access?")');
    await shot('3-consent');
    await page.getByLabel('Ada Browserpatient (born 1975-05-06)').check();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${REDIRECT}**`);
    await shot('4-back-in-the-app');

    expect(problems).toEqual([]);
    const tokens = await client.authorizationCodeGrant(c, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state });
    expect(tokens.patient).toBe(patientId);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ fhirUser: 'Practitioner/grey', role: 'provider', patient: patientId });
    const read = await fetch(`${base}/Patient/${patientId}`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(read.status).toBe(200);
    await page.close();
  });
});

describe.runIf(!available)('the sign-in pages in headless Chromium — NOT RUN: chromium is not installed here (scripts/ensure-test-services.sh could not install it)', () => {
  it.skip('needs /usr/bin/chromium', () => undefined);
});
