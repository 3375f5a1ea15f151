// GraphQL over HTTP to this origin's /graphql. Errors become ApiError with the
// server's extensions.code. The access token comes from auth.js (kept in memory); a
// request refused as UNAUTHENTICATED is retried once after refreshing the session.
import { ApiError } from './errors.js';

let tokens = { access: () => null, refresh: async () => false };

/** auth.js tells the API how to read and renew the access token. */
export function useTokens(t) {
  tokens = t;
}

async function post(query, variables, token) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('NETWORK', 'network error');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status === 429 ? 'RATE_LIMITED' : 'UNAVAILABLE', `HTTP ${response.status}`);
  }
  if (body.errors?.length) {
    const e = body.errors[0];
    throw new ApiError(e.extensions?.code || 'INTERNAL', e.message, e.extensions || {});
  }
  return body.data;
}

/** Runs a query or mutation; returns `data` or throws the first error as ApiError. */
export async function gql(query, variables = {}, { anonymous = false } = {}) {
  const token = anonymous ? null : tokens.access();
  try {
    return await post(query, variables, token);
  } catch (e) {
    if (e.code === 'UNAUTHENTICATED' && token && (await tokens.refresh())) {
      return post(query, variables, tokens.access());
    }
    throw e;
  }
}
