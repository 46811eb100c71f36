import { accessFor, authorize, authorizeOperation, type Decision, type Policy, type Principal } from '../auth/authorize.ts';
import type { FhirModel, Interaction } from '../fhir/definitions.ts';
import { notSupported } from './params.ts';

// The FHIR URLs of a type and what each method there is, for every transport: the HTTP routes are
// registered from this table, and a Bundle entry's request.method and request.url are read
// through it, so that both reach the same interactions under the same decision.
// See: https://hl7.org/fhir/R4/http.html (the RESTful interactions and their URLs)

export type RouteInteraction = Interaction | 'capabilities' | 'conditional-update' | 'conditional-delete' | 'patch' | 'method-not-allowed' | 'bundle';

/** What a route (or a Bundle entry) is: the input of the one authorization decision. */
export interface RouteMeaning {
  readonly type: string;
  readonly interaction: RouteInteraction;
  readonly operation?: string;
  /** the methods this URL offers for the type (the Allow header of a 405 or an OPTIONS answer) */
  readonly allow?: string;
}

export type UrlShape = '' | '/_search' | '/_history' | '/:id' | '/:id/_history' | '/:id/_history/:vid';

interface TypeRoute {
  readonly method: string;
  readonly url: UrlShape;
  readonly interaction: RouteInteraction;
  readonly withId?: boolean;
  readonly withVid?: boolean;
}

export const TYPE_ROUTES: readonly TypeRoute[] = [
  { method: 'GET', url: '', interaction: 'search-type' },
  { method: 'POST', url: '/_search', interaction: 'search-type' },
  { method: 'POST', url: '', interaction: 'create' },
  { method: 'PUT', url: '', interaction: 'conditional-update' },
  { method: 'GET', url: '/_history', interaction: 'history-type' },
  { method: 'GET', url: '/:id', interaction: 'read', withId: true },
  { method: 'PUT', url: '/:id', interaction: 'update', withId: true },
  { method: 'DELETE', url: '/:id', interaction: 'delete', withId: true },
  { method: 'GET', url: '/:id/_history', interaction: 'history-instance', withId: true },
  { method: 'GET', url: '/:id/_history/:vid', interaction: 'vread', withId: true, withVid: true },
  // See: https://hl7.org/fhir/R4/http.html#cdelete (not offered: a 405 from the same decision path)
  { method: 'DELETE', url: '', interaction: 'conditional-delete' },
  // See: https://hl7.org/fhir/R4/http.html#patch (not offered), and methods no FHIR interaction has
  // at these URLs: 405 with Allow, from the same decision path.
  { method: 'PATCH', url: '', interaction: 'patch' },
  { method: 'PATCH', url: '/:id', interaction: 'patch', withId: true },
  { method: 'POST', url: '/:id', interaction: 'method-not-allowed', withId: true },
];

/** What a type offers at one of its URLs: the methods of its offered interactions there (HEAD with GET). */
export function allowedMethods(model: FhirModel, type: string, url: string): string[] {
  const offered = model.types.get(type)?.interactions;
  const methods = TYPE_ROUTES.filter((r) => r.url === url && isOffered(offered, r.interaction)).map((r) => r.method);
  if (methods.includes('GET')) methods.splice(methods.indexOf('GET') + 1, 0, 'HEAD');
  return methods;
}

/** Whether the type offers the interaction (a conditional update is an update; some never are). */
export function isOffered(offered: ReadonlySet<string> | undefined, interaction: RouteInteraction): interaction is Interaction | 'conditional-update' {
  if (interaction === 'capabilities' || interaction === 'conditional-delete' || interaction === 'patch' || interaction === 'method-not-allowed' || interaction === 'bundle') {
    return false;
  }
  return offered?.has(interaction === 'conditional-update' ? 'update' : interaction) ?? false;
}

const ID = '[A-Za-z0-9\\-.]{1,64}';
const SHAPES: [RegExp, UrlShape][] = [
  [/^$/, ''],
  [/^\/_search$/, '/_search'],
  [/^\/_history$/, '/_history'],
  [new RegExp(`^/(${ID})$`), '/:id'],
  [new RegExp(`^/(${ID})/_history$`), '/:id/_history'],
  [new RegExp(`^/(${ID})/_history/([1-9][0-9]{0,9})$`), '/:id/_history/:vid'],
];

/** The FHIR URL shape of a path under the base (`/Patient/123` → Patient, `/:id`, id 123). */
export function routeShape(model: FhirModel, path: string): { type: string; url: UrlShape; id?: string; vid?: string } | undefined {
  const m = /^\/([A-Za-z]+)(\/.*)?$/.exec(path);
  if (!m || !model.types.has(m[1])) return undefined;
  const rest = m[2] ?? '';
  for (const [re, url] of SHAPES) {
    const found = re.exec(rest);
    if (found) return { type: m[1], url, id: found[1], vid: found[2] };
  }
  return undefined;
}

/**
 * The one authorization decision, for an HTTP route and a Bundle entry alike: 405 (thrown) for
 * what the type does not offer, else whether the token grants the interaction or operation.
 * See: https://hl7.org/fhir/R4/http.html#general (405 for an interaction the type does not support)
 * and https://www.rfc-editor.org/rfc/rfc9110#section-15.5.6 (a 405 MUST carry Allow)
 */
export function decideRoute(
  principal: Principal,
  route: RouteMeaning,
  conditionalCreate: boolean,
  model: FhirModel,
  policy: Policy,
  method: string,
): Decision {
  if (route.operation !== undefined) return authorizeOperation(principal, route.operation, route.type, policy);
  const interaction = route.interaction;
  // A batch or transaction is a container: each of its entries passes this same decision.
  if (interaction === 'bundle') return { allowed: true, access: accessFor(principal, policy) };
  if (!isOffered(model.types.get(route.type)?.interactions, interaction)) {
    const what = interaction === 'method-not-allowed' ? `${method} on this URL` : interaction;
    throw notSupported(what, route.type, route.allow);
  }
  // See: https://hl7.org/fhir/R4/http.html#ccreate (a conditional create also searches)
  return authorize(principal, interaction === 'create' && conditionalCreate ? 'conditional-create' : interaction, route.type, policy);
}
