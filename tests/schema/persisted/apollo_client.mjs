// Apollo Client with createPersistedQueryLink against a homefeed server: prints every HTTP exchange
// and each query's result as JSON lines, for the Python test to check.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";

const [url, token, useGET, query, variablesJson] = process.argv.slice(2);
const exchanges = [];
async function recordingFetch(input, init) {
  const response = await fetch(input, init);
  const body = await response.clone().text();
  exchanges.push({ method: init?.method ?? "GET", url: String(input), body: init?.body ?? null,
                   status: response.status, response: body });
  return response;
}
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const link = createPersistedQueryLink({ sha256, useGETForHashedQueries: useGET === "get" }).concat(
  new HttpLink({ uri: url, fetch: recordingFetch, headers: { authorization: `Bearer ${token}` } }),
);
const client = new ApolloClient({ link, cache: new InMemoryCache({ addTypename: false }) });
const results = [];
for (let i = 0; i < 2; i++) {
  const result = await client.query({ query: gql(query), variables: JSON.parse(variablesJson),
                                      fetchPolicy: "network-only" });
  results.push(result.data);
}
process.stdout.write(JSON.stringify({ exchanges, results }));
