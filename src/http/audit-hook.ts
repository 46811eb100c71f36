import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AuditFacts } from '../audit/audit-event.ts';
import type { AuditSink } from '../audit/audit-sink.ts';
import { bearerToken, type TokenVerifier } from '../auth/token-verifier.ts';
import { patientsOf } from '../audit/patients.ts';
import type { Config } from '../config/config.ts';
import type { FhirModel } from '../fhir/definitions.ts';
import { FhirError, operationOutcome } from '../fhir/errors.ts';
import type { AuditNotes, EntryFacts, EntryTransport } from '../rest/request.ts';
import { logFault } from './error-handler.ts';

// Headers that describe a resource: none may go out with a response whose audit failed.
const RESOURCE_HEADERS = ['etag', 'last-modified', 'location', 'content-location'];

/**
 * Every response of the protected API, refusals and faults included, waits for its AuditEvent
 * to be durably committed. If that fails, the response becomes a 503 with no resource content.
 */
export const auditPlugin = fp(
  async (api: FastifyInstance, deps: AuditDeps) => registerAuditHooks(api, deps),
  { name: 'hearth-audit' },
);

interface AuditDeps {
  readonly sink: AuditSink;
  readonly model: FhirModel;
  readonly compartments: ReadonlyMap<string, readonly string[]>;
  readonly config: Config;
  readonly clock: () => Date;
}

function registerAuditHooks(api: FastifyInstance, deps: AuditDeps): void {
  const { sink, model, compartments, config, clock } = deps;
  api.decorateRequest('auditNotes', null as never);
  api.decorateRequest('auditAttempt', null as never);
  api.decorateRequest('entryAudit', null);
  api.addHook('onRequest', async (request, reply) => {
    request.auditNotes = { touched: [] };
    // The write-ahead event: who is about to write what, durable before the data commits.
    request.auditAttempt = () => sink.recordFacts({ ...factsOf(request, reply), phase: 'attempt' });
    if (request.routeOptions.config.fhir?.interaction === 'bundle') request.entryAudit = entryTransport(request);
  });
  api.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const facts = factsOf(request, reply);
    try {
      await sink.recordFacts(facts);
      return payload;
    } catch (err) {
      return withheld(request, reply, err);
    }
  });

  /** The references an interaction noted, and the patients whose data they hold. */
  function touchedFacts(notes: AuditNotes): { entities: AuditFacts['entities'][number][]; patients: Set<string> } {
    const entities: AuditFacts['entities'][number][] = [];
    const patients = new Set<string>();
    for (const { reference, role, v } of notes.touched) {
      entities.push({ reference, role });
      if (v) for (const p of patientsOf(model, compartments, v, config.baseUrl)) patients.add(p);
    }
    return { entities, patients };
  }

  /** Each entry of a batch or transaction: its own AuditEvent (and write-ahead attempt), linked to the Bundle's. */
  function entryTransport(request: FastifyRequest): EntryTransport {
    const facts = (f: EntryFacts, phase?: 'attempt'): AuditFacts => {
      const { entities, patients } = touchedFacts(f.audit);
      return {
        requestId: f.requestId,
        recorded: clock(),
        interaction: f.interaction,
        resourceType: f.type,
        status: f.status,
        issueCode: f.issueCode,
        principal: request.principal ?? undefined,
        address: request.ip,
        entities,
        patients: [...patients],
        query: f.query,
        server: { baseUrl: config.baseUrl, name: 'Hearth' },
        partOf: request.id,
        ...(phase ? { phase } : {}),
      };
    };
    return {
      requestId: (index) => `${request.id}.${index}`,
      attempt: (f) => sink.recordFacts(facts(f, 'attempt')),
      record: (f) => sink.recordFacts(facts(f)),
      stage: (fs) => sink.stage(fs.map((f) => facts(f))),
      fault: (err, requestId) => logFault(request, err as Error, { entry: requestId }),
    };
  }

  function factsOf(request: FastifyRequest, reply: FastifyReply): AuditFacts {
    const fhir = request.routeOptions.config.fhir;
    const notes = request.auditNotes ?? { touched: [] };
    const { entities, patients } = touchedFacts(notes);
    const params = (request.params ?? {}) as { id?: string; vid?: string };
    if (entities.length === 0 && fhir && params.id && /^[A-Za-z0-9\-.]{1,64}$/.test(params.id)) {
      entities.push({ reference: `${fhir.type}/${params.id}${params.vid && /^\d+$/.test(params.vid) ? `/_history/${params.vid}` : ''}`, role: 'domain' });
    }
    if (fhir?.type === 'Patient' && params.id && /^[A-Za-z0-9\-.]{1,64}$/.test(params.id)) patients.add(`Patient/${params.id}`);
    const interaction = notes.interaction ?? (fhir?.operation ? 'operation' : (fhir?.interaction ?? 'operation'));
    const isQuery = interaction === 'search-type' || interaction === 'history-type' || interaction === 'operation';
    const q = request.url.indexOf('?');
    return {
      requestId: request.id,
      recorded: clock(),
      interaction,
      resourceType: fhir?.type,
      status: reply.statusCode,
      issueCode: request.auditIssue,
      principal: request.principal ?? undefined,
      address: request.ip,
      entities,
      patients: [...patients],
      query: notes.query ?? (isQuery ? (q === -1 ? '' : request.url.slice(q + 1)) : undefined),
      server: { baseUrl: config.baseUrl, name: 'Hearth' },
    };
  }
}

/** The payload of a response whose AuditEvent could not be written: a 503 with no resource content. */
export function withheld(request: FastifyRequest, reply: FastifyReply, err: unknown): string {
  request.log.error({ err: { type: (err as Error).name, code: (err as { code?: string }).code } }, 'audit write failed: response withheld');
  for (const h of RESOURCE_HEADERS) reply.removeHeader(h);
  // Not through the error handler: this is the last hook of a response already on its way.
  const e = new FhirError('HEARTH_AUDIT_UNAVAILABLE', `the audit trail is unavailable, so nothing was returned; request id ${request.id}`);
  reply.code(e.status).header('content-type', 'application/fhir+json; charset=utf-8').header('retry-after', '5');
  return JSON.stringify(operationOutcome(e.issues));
}

const carriesToken = (request: FastifyRequest) => /^bearer\s/i.test(String(request.headers.authorization ?? ''));

/**
 * Requests outside the protected API's hooks — Fastify's own refusals before routing (a
 * malformed URL, a path segment too long), paths outside the API, and the public routes
 * (metadata, discovery, health) — are audited here when they carry a bearer token, valid or not:
 * who it was (when the token verifies), from where, when, the status. The URL stays out (it may
 * quote data). Refusals with no token are counted, not audited: anyone may send them, and they
 * reach nothing.
 */
export class RefusalAudit {
  readonly #deps: Pick<AuditDeps, 'sink' | 'config' | 'clock'> & { readonly verifier: TokenVerifier };
  #unaudited = 0;

  constructor(deps: Pick<AuditDeps, 'sink' | 'config' | 'clock'> & { readonly verifier: TokenVerifier }) {
    this.#deps = deps;
  }

  /** refusals outside the protected API that carried no bearer token (a metric) */
  get unaudited(): number {
    return this.#unaudited;
  }

  /** Records a refusal (durably, before it is answered) if it carries a token, else counts it; rejects if the audit trail fails. */
  async record(request: FastifyRequest, status: number, issueCode: string | undefined): Promise<void> {
    if (!carriesToken(request)) {
      this.#unaudited++;
      return;
    }
    const { sink, config, clock, verifier } = this.#deps;
    // A malformed header (bearerToken throws at once) is as unverified as a forged token.
    const principal = await Promise.resolve()
      .then(() => verifier.verify(bearerToken(request.headers.authorization)))
      .catch(() => undefined);
    await sink.recordFacts({
      requestId: request.id,
      recorded: clock(),
      interaction: 'operation',
      status,
      issueCode,
      principal,
      address: request.ip,
      entities: [],
      patients: [],
      server: { baseUrl: config.baseUrl, name: 'Hearth' },
    });
  }

  /**
   * The onSend hook of the public routes: a response to a request that carries a token waits for
   * its AuditEvent (503 with nothing returned if it cannot be written); others go as they are.
   */
  readonly onSend = async (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    if (!carriesToken(request)) return payload;
    try {
      await this.record(request, reply.statusCode, request.auditIssue);
      return payload;
    } catch (err) {
      return withheld(request, reply, err);
    }
  };
}
