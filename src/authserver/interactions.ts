import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createLocalJWKSet, jwtVerify } from 'jose';
import QRCode from 'qrcode';
import { parseScope } from '../auth/scopes.ts';
import { codePage, consentPage, enrolPage, loginPage, type Page } from './pages.ts';
import { type AuthServer, EHR_CLIENT } from './provider.ts';
import type { User } from './users.ts';

/** What the sign-in steps record: each success, failure, lockout and second-factor event. */
export interface LoginEvent {
  readonly requestId: string;
  readonly address?: string;
  readonly username: string;
  /** password, mfa-enrol, mfa, consent */
  readonly step: string;
  readonly outcome: 'success' | 'failure' | 'locked' | 'denied';
  readonly user?: User;
}

/** Patients a user may pick as the launch context (a practitioner's list): an access of the user's, audited as such. */
export type PatientList = (user: User, request: { id: string; ip: string }) => Promise<{ id: string; label: string }[]>;

const FAILURES_PER_ADDRESS = 20;
const EXPIRED_LAUNCH = 'the launch from the EHR is unknown or expired: open the app from the EHR again';
/** How long an EHR's launch value may be used. */
const LAUNCH_SECONDS = 600;
const ADDRESS_WINDOW_MS = 15 * 60 * 1000;

/**
 * The sign-in steps of the authorization code flow, served under /auth/interaction/<uid>: the
 * password, the second factor (enrolment on first sign-in), then the patient (a user who may
 * see several patients, when the app asks for launch/patient) and consent — which of the
 * scopes the app asked for the user grants. Every form carries a CSRF token bound to the
 * interaction; failed passwords and codes lock the account (users.ts) and are throttled per
 * address; every step leaves an AuditEvent.
 */
export async function interactionRoutes(
  app: FastifyInstance,
  opts: { server: AuthServer; record: (e: LoginEvent) => Promise<void>; patients: PatientList },
): Promise<void> {
  const { server, record, patients } = opts;
  const { provider, users } = server;
  const secret = randomBytes(32);
  const csrfOf = (uid: string) => createHmac('sha256', secret).update(`csrf:${uid}`).digest('base64url');
  const failures = new Map<string, { count: number; since: number }>();
  const verifyKeys = createLocalJWKSet(server.jwks as Parameters<typeof createLocalJWKSet>[0]);
  // Who passed the password step of an interaction, waiting for the second factor (and the
  // secret being enrolled): in memory, for the interaction's few minutes.
  const pending = new Map<string, { username: string; enrolSecret?: string; until: number }>();

  app.removeContentTypeParser('application/x-www-form-urlencoded');
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
    // (a repeated field — the scopes checked — is a list)
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of new URLSearchParams(body as string)) {
      const had = out[k];
      out[k] = had === undefined ? v : [had].flat().concat(v);
    }
    done(null, out);
  });

  const send = (reply: FastifyReply, p: Page, status = 200) =>
    reply.code(status).header('content-security-policy', p.csp).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(p.html);

  const form = (request: FastifyRequest) => (request.body ?? {}) as Record<string, string | undefined>;
  const checkCsrf = (request: FastifyRequest, uid: string) => {
    const got = Buffer.from(form(request).csrf ?? '');
    const want = Buffer.from(csrfOf(uid));
    return got.length === want.length && timingSafeEqual(got, want);
  };
  const throttled = (address: string) => {
    const f = failures.get(address);
    return f !== undefined && Date.now() - f.since < ADDRESS_WINDOW_MS && f.count >= FAILURES_PER_ADDRESS;
  };
  const failedFrom = (address: string) => {
    const now = Date.now();
    // (bounded: past windows are forgotten once many addresses have failed)
    if (failures.size >= 10_000) for (const [a, f] of failures) if (now - f.since >= ADDRESS_WINDOW_MS) failures.delete(a);
    const f = failures.get(address);
    if (!f || now - f.since >= ADDRESS_WINDOW_MS) failures.set(address, { count: 1, since: now });
    else f.count++;
  };

  /** The answer to a form whose interaction is gone or was never this browser's. */
  const expired = (reply: FastifyReply) => reply.code(403).type('text/plain').send('forbidden: the form expired; start again from the app');
  /** The app's name as its pages show it: its registered name, or its id. */
  const clientName = async (params: Record<string, unknown>) => {
    const id = String(params.client_id);
    return (await provider.Client.find(id))?.clientName ?? id;
  };

  /** The pages of one interaction: its form actions, CSRF token and the app's origin filled in. */
  const pagesOf = (uid: string, params: Record<string, unknown>) => {
    const back = appOrigin(params);
    return {
      login: (name: string, message?: string) => loginPage(`/auth/interaction/${uid}/login`, csrfOf(uid), name, back, message),
      code: (message?: string) => codePage(`/auth/interaction/${uid}/mfa`, csrfOf(uid), back, message),
      enrol: async (e: { uri: string; secret: string }, message?: string) =>
        enrolPage(`/auth/interaction/${uid}/mfa`, csrfOf(uid), await QRCode.toString(e.uri, { type: 'svg', margin: 1 }), e.secret, back, message),
    };
  };

  app.get('/auth/interaction/:uid', async (request, reply) => {
    const details = await provider.interactionDetails(request.raw, reply.raw);
    const uid = details.uid;
    const name = await clientName(details.params);
    // An EHR launch whose value is unknown or expired goes no further: not even the sign-in.
    if (ehrContext(details.params) === 'expired') return reply.code(400).type('text/plain').send(EXPIRED_LAUNCH);
    if (details.prompt.name === 'login') return send(reply, pagesOf(uid, details.params).login(name));
    return send(reply, await consent(request, uid, details.session?.accountId, details.params, name));
  });

  app.post('/auth/interaction/:uid/login', async (request, reply) => {
    const details = await provider.interactionDetails(request.raw, reply.raw);
    const uid = details.uid;
    if (!checkCsrf(request, uid)) return expired(reply);
    const fields = form(request);
    const username = (fields.username ?? '').slice(0, 128);
    const password = (fields.password ?? '').slice(0, 1024);
    const name = await clientName(details.params);
    const pages = pagesOf(uid, details.params);
    if (throttled(request.ip)) {
      await record({ requestId: request.id, address: request.ip, username, step: 'password', outcome: 'locked' });
      return send(reply, pages.login(name, 'Too many failed sign-ins from this address; try again later.'), 429);
    }
    const result = await users.checkPassword(username, password);
    if (result === undefined || result === 'locked') {
      failedFrom(request.ip);
      await record({ requestId: request.id, address: request.ip, username, step: 'password', outcome: result === 'locked' ? 'locked' : 'failure' });
      const message = result === 'locked' ? 'This account is locked for a while after too many failed attempts.' : 'The user name or password is wrong.';
      return send(reply, pages.login(name, message), 401);
    }
    await record({ requestId: request.id, address: request.ip, username: result.username, step: 'password', outcome: 'success', user: result });
    if (!result.mfaRequired) return finishLogin(request, reply, result.username);
    if (!result.mfaEnrolled) {
      const enrolment = users.enrolment(result.username);
      pending.set(uid, { username: result.username, enrolSecret: enrolment.secret, until: Date.now() + 10 * 60 * 1000 });
      return send(reply, await pages.enrol(enrolment));
    }
    pending.set(uid, { username: result.username, until: Date.now() + 10 * 60 * 1000 });
    return send(reply, pages.code());
  });

  app.post('/auth/interaction/:uid/mfa', async (request, reply) => {
    const details = await provider.interactionDetails(request.raw, reply.raw);
    const uid = details.uid;
    const p = pending.get(uid);
    if (!checkCsrf(request, uid) || !p || p.until < Date.now()) return expired(reply);
    const code = (form(request).code ?? '').trim();
    const pages = pagesOf(uid, details.params);
    if (p.enrolSecret) {
      if (!users.enrol(p.username, p.enrolSecret, code)) {
        await record({ requestId: request.id, address: request.ip, username: p.username, step: 'mfa-enrol', outcome: 'failure' });
        const enrolment = users.enrolment(p.username);
        pending.set(uid, { ...p, enrolSecret: enrolment.secret });
        return send(reply, await pages.enrol(enrolment, 'That code is not right; scan this new key and try again.'), 401);
      }
      await record({ requestId: request.id, address: request.ip, username: p.username, step: 'mfa-enrol', outcome: 'success' });
    } else {
      const result = users.checkCode(p.username, code);
      if (result === undefined || result === 'locked') {
        failedFrom(request.ip);
        await record({ requestId: request.id, address: request.ip, username: p.username, step: 'mfa', outcome: result === 'locked' ? 'locked' : 'failure' });
        if (result === 'locked') pending.delete(uid);
        return send(reply, pages.code(result === 'locked' ? 'This account is locked for a while.' : 'That code is not right.'), 401);
      }
      await record({ requestId: request.id, address: request.ip, username: p.username, step: 'mfa', outcome: 'success', user: result });
    }
    pending.delete(uid);
    return finishLogin(request, reply, p.username);
  });

  app.post('/auth/interaction/:uid/consent', async (request, reply) => {
    const details = await provider.interactionDetails(request.raw, reply.raw);
    const uid = details.uid;
    const accountId = details.session?.accountId;
    if (!checkCsrf(request, uid) || !accountId || details.prompt.name !== 'consent') return expired(reply);
    const user = users.get(accountId);
    const body = request.body as Record<string, string | string[] | undefined>;
    if (!user || body.decision !== 'allow') {
      await record({ requestId: request.id, address: request.ip, username: accountId, step: 'consent', outcome: 'denied', user });
      reply.hijack();
      return provider.interactionFinished(request.raw, reply.raw, { error: 'access_denied', error_description: 'the user did not allow access' }, { mergeWithLastSubmission: false });
    }
    const requested = new Set(String(details.params.scope ?? '').split(' ').filter(Boolean));
    const chosen = new Set([body.scope ?? []].flat().filter((s) => requested.has(s)));
    // The launch context: from the EHR that launched the app; else a patient user is the
    // patient, and others pick one the list offered.
    let patient: string | undefined;
    let encounter: string | undefined;
    const ehr = ehrContext(details.params);
    if (ehr === 'expired') return reply.code(400).type('text/plain').send(EXPIRED_LAUNCH);
    if (ehr && chosen.has('launch')) ({ patient, encounter } = ehr);
    else if (chosen.has('launch/patient')) {
      if (user.role === 'patient') patient = user.fhirUser?.startsWith('Patient/') ? user.fhirUser.slice('Patient/'.length) : undefined;
      else {
        const offered = await patients(user, request);
        patient = offered.find((p) => p.id === body.patient)?.id;
      }
      if (!patient) return send(reply, await consent(request, uid, accountId, details.params, await clientName(details.params), 'Choose a patient.'), 400);
    }
    const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    const oidc = [...chosen].filter((s) => parseScope(s) === undefined);
    const clinical = [...chosen].filter((s) => parseScope(s) !== undefined);
    if (oidc.length) grant.addOIDCScope(oidc.join(' '));
    if (clinical.length) grant.addResourceScope(server.resource, clinical.join(' '));
    // What the user left unchecked is refused, so that the flow does not ask for it again.
    const refused = [...requested].filter((s) => !chosen.has(s));
    const refusedOidc = refused.filter((s) => parseScope(s) === undefined);
    const refusedClinical = refused.filter((s) => parseScope(s) !== undefined);
    if (refusedOidc.length) grant.rejectOIDCScope(refusedOidc.join(' '));
    if (refusedClinical.length) grant.rejectResourceScope(server.resource, refusedClinical.join(' '));
    // The ID token names the user's record only when the user allowed fhirUser.
    if (chosen.has('fhirUser')) grant.addOIDCClaims(['fhirUser']);
    const grantId = await grant.save();
    server.db.setGrantContext(grantId, { patient, encounter });
    await record({ requestId: request.id, address: request.ip, username: accountId, step: 'consent', outcome: 'success', user });
    reply.hijack();
    return provider.interactionFinished(request.raw, reply.raw, { consent: { grantId } }, { mergeWithLastSubmission: true });
  });

  /** The context an EHR registered for this launch (`launch` scope and parameter); 'expired' when the value is unknown. */
  function ehrContext(params: Record<string, unknown>): { patient: string; encounter?: string } | 'expired' | undefined {
    const scopes = String(params.scope ?? '').split(' ');
    if (!scopes.includes('launch') || typeof params.launch !== 'string') return undefined;
    return server.db.launch(params.launch) ?? 'expired';
  }

  // See: SMART App Launch 2.x, EHR launch: the EHR hands the app an opaque `launch` value that
  // the authorization server resolves to the context. A trusted EHR client (registered with
  // --ehr) registers the context here with a token of its own (client_credentials).
  app.post('/auth/launch', async (request, reply) => {
    const auth = String(request.headers.authorization ?? '');
    const token = /^Bearer ([A-Za-z0-9\-_.]+)$/i.exec(auth)?.[1];
    let clientId: string | undefined;
    try {
      const { payload } = await jwtVerify(token ?? '', verifyKeys, { issuer: server.issuer, audience: server.resource, typ: 'at+jwt' });
      clientId = typeof payload.client_id === 'string' && payload.sub === payload.client_id ? payload.client_id : undefined;
    } catch {
      clientId = undefined;
    }
    const refuse = async (status: number, error: string) => {
      await server.audit({ requestId: request.id, address: request.ip, endpoint: 'launch', status, error, clientId, authenticated: false });
      return reply.code(status).header('cache-control', 'no-store').send({ error });
    };
    if (!clientId) return refuse(401, 'invalid_token');
    const client = server.db.client(clientId);
    if (!client || client.revokedAt || client.metadata[EHR_CLIENT] !== true) return refuse(403, 'insufficient_scope');
    const body = (request.body ?? {}) as { patient?: unknown; encounter?: unknown };
    const id = /^[A-Za-z0-9\-.]{1,64}$/;
    if (typeof body.patient !== 'string' || !id.test(body.patient) || (body.encounter !== undefined && (typeof body.encounter !== 'string' || !id.test(body.encounter)))) {
      return refuse(400, 'invalid_request');
    }
    const launch = randomBytes(24).toString('base64url');
    server.db.setLaunch(launch, { clientId, patient: body.patient, ...(typeof body.encounter === 'string' ? { encounter: body.encounter } : {}) }, LAUNCH_SECONDS);
    await server.audit({ requestId: request.id, address: request.ip, endpoint: 'launch', status: 201, clientId, authenticated: true });
    return reply.code(201).header('cache-control', 'no-store').send({ launch, expires_in: LAUNCH_SECONDS });
  });

  async function finishLogin(request: FastifyRequest, reply: FastifyReply, username: string) {
    reply.hijack();
    await provider.interactionFinished(request.raw, reply.raw, { login: { accountId: username } }, { mergeWithLastSubmission: false });
  }

  async function consent(
    request: FastifyRequest,
    uid: string,
    accountId: string | undefined,
    params: Record<string, unknown>,
    clientName: string,
    message?: string,
  ): Promise<Page> {
    const user = accountId ? users.get(accountId) : undefined;
    const scopes = String(params.scope ?? '').split(' ').filter(Boolean);
    const ehr = ehrContext(params);
    const offered = scopes.includes('launch/patient') && !ehr && user && user.role !== 'patient' ? await patients(user, request) : undefined;
    const choices = scopes.map((s) => ({ scope: s, description: describe(s) }));
    return consentPage(`/auth/interaction/${uid}/consent`, csrfOf(uid), clientName, choices, offered, appOrigin(params), message);
  }
}

/** The origin of the app's redirect URI (validated by oidc-provider before any page is shown). */
function appOrigin(params: Record<string, unknown>): string {
  return new URL(String(params.redirect_uri)).origin;
}

/** What a scope means, in words a patient or clinician understands. */
function describe(scope: string): string {
  const g = parseScope(scope);
  if (g) {
    const what = g.type === '*' ? 'all health records' : `${g.type} records`;
    const whose = g.context === 'patient' ? 'of the selected patient' : g.context === 'user' ? 'you may see' : 'of every patient';
    const can = [g.permissions.has('r') || g.permissions.has('s') ? 'read' : '', g.permissions.has('c') || g.permissions.has('u') ? 'change' : '', g.permissions.has('d') ? 'delete' : '']
      .filter(Boolean)
      .join(', ');
    return `${can} ${what} ${whose}${g.filter ? ' (some only)' : ''}`;
  }
  switch (scope) {
    case 'openid':
      return 'know that you signed in';
    case 'fhirUser':
      return 'know who you are (your record)';
    case 'launch/patient':
      return 'know which patient is selected';
    case 'offline_access':
      return 'keep access after you close it';
    case 'online_access':
      return 'keep access while you are signed in';
    default:
      return scope;
  }
}
