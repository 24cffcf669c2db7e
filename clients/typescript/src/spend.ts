// A typed call of the API from a Node backend (Node 20+ has fetch): the request and answer types
// come from src/api.d.ts, generated from functions/spend/openapi.json by `npm run generate`.
import type { components, paths } from "./api.js";

export type SpendRequest = components["schemas"]["SpendRequest"];
export type SpendResponse = paths["/spend"]["post"]["responses"]["200"]["content"]["application/json"];

/** POST /spend; `idToken` is a Google ID token for the function's URL (none for the local run). */
export async function spend(baseUrl: string, request: SpendRequest, idToken?: string): Promise<SpendResponse> {
  const response = await fetch(`${baseUrl}/spend`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(idToken ? { Authorization: `Bearer ${idToken}` } : {}) },
    body: JSON.stringify(request),
  });
  if (!response.ok) {
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    throw new Error(`${error.code}: ${error.message}`);
  }
  return (await response.json()) as SpendResponse;
}

export function remaining(answer: SpendResponse): number {
  return answer.balance.balance;
}
