import { randomBytes } from 'node:crypto';

// The sign-in pages: server-rendered HTML and CSS, no script, every value escaped; each response
// carries a Content-Security-Policy that allows its own inline style (by nonce) and nothing else
// — no script at all, forms posting to this server only (and, for the last step, the redirect
// to the app it hands back to).

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export interface Page {
  readonly html: string;
  readonly csp: string;
}

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1d21}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.35rem;margin:0 0 1rem}label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #8a8f98;border-radius:4px}
button{margin-top:1.25rem;padding:.6rem 1.2rem;font:inherit;border:0;border-radius:4px;background:#0b57d0;color:#fff;cursor:pointer}
button.secondary{background:#5f6368;margin-left:.5rem}
.error{color:#b3261e;font-weight:600}ul{padding-left:1.2rem}fieldset{border:0;padding:0;margin:1rem 0}
.qr svg{width:12rem;height:12rem}code{white-space:nowrap}code.key{white-space:normal;word-break:break-all}label.inline{display:inline;font-weight:400}
`;

/** A whole page: title, body, and the CSP that goes with it (`formTargets`: where its forms may lead). */
export function page(title: string, body: string, formTargets: readonly string[] = []): Page {
  const nonce = randomBytes(16).toString('base64');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} — Hearth</title><style nonce="${nonce}">${STYLE}</style></head>
<body><main><h1>${esc(title)}</h1>${body}</main></body></html>`;
  const csp = [
    'default-src \'none\'',
    `style-src 'nonce-${nonce}'`,
    'img-src \'self\' data:',
    `form-action 'self'${formTargets.map((t) => ` ${t}`).join('')}`,
    'frame-ancestors \'none\'',
    'base-uri \'none\'',
  ].join('; ');
  return { html, csp };
}

const error = (message?: string) => (message ? `<p class="error" role="alert">${esc(message)}</p>` : '');
const csrfField = (csrf: string) => `<input type="hidden" name="csrf" value="${esc(csrf)}">`;

// Every form may lead back to the app: once signed in (and consent given before), the answer to
// a form is the redirect to the app's redirect URI, which form-action must allow.
export function loginPage(action: string, csrf: string, clientName: string, appOrigin: string, message?: string): Page {
  return page(
    'Sign in',
    `<p>to continue to <strong>${esc(clientName)}</strong></p>${error(message)}
<form method="post" action="${esc(action)}">${csrfField(csrf)}
<label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>`,
    [appOrigin],
  );
}

export function codePage(action: string, csrf: string, appOrigin: string, message?: string): Page {
  return page(
    'Second factor',
    `<p>Enter the 6-digit code from your authenticator app.</p>${error(message)}
<form method="post" action="${esc(action)}">${csrfField(csrf)}
<label for="code">Code</label><input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required autofocus>
<button type="submit">Verify</button></form>`,
    [appOrigin],
  );
}

export function enrolPage(action: string, csrf: string, qrSvg: string, secret: string, appOrigin: string, message?: string): Page {
  return page(
    'Set up your second factor',
    `<p>Every account here signs in with a second factor. Scan this code with an authenticator app
(or enter the key by hand), then enter the 6-digit code it shows.</p>${error(message)}
<div class="qr" aria-hidden="true">${qrSvg}</div><p>Key: <code class="key">${esc(secret)}</code></p>
<form method="post" action="${esc(action)}">${csrfField(csrf)}
<label for="code">Code</label><input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required autofocus>
<button type="submit">Verify and continue</button></form>`,
    [appOrigin],
  );
}

export interface ConsentChoice {
  readonly scope: string;
  readonly description: string;
}

/** Which scopes the app asks for (each may be left out), and — for a user who may see several patients — which patient. */
export function consentPage(
  action: string,
  csrf: string,
  clientName: string,
  scopes: readonly ConsentChoice[],
  patients: readonly { id: string; label: string }[] | undefined,
  redirectOrigin: string,
  message?: string,
): Page {
  const list = scopes
    .map((s, i) => `<li><input type="checkbox" id="s${i}" name="scope" value="${esc(s.scope)}" checked> <label for="s${i}" class="inline">${esc(s.description)} <code>${esc(s.scope)}</code></label></li>`)
    .join('');
  const picker = patients
    ? `<fieldset><legend><strong>Which patient?</strong></legend>${patients.length === 0 ? '<p>No patient is available to you.</p>' : ''}${patients
      .map((p, i) => `<div><input type="radio" id="p${i}" name="patient" value="${esc(p.id)}"${i === 0 ? ' required' : ''}> <label for="p${i}" class="inline">${esc(p.label)}</label></div>`)
      .join('')}</fieldset>`
    : '';
  return page(
    'Allow access?',
    `<p><strong>${esc(clientName)}</strong> asks for:</p>${error(message)}
<form method="post" action="${esc(action)}">${csrfField(csrf)}<ul>${list}</ul>${picker}
<button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny" class="secondary" formnovalidate>Deny</button></form>`,
    [redirectOrigin],
  );
}
