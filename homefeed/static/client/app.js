// The homefeed web client: plain ES module, no build step. Queries over fetch, live updates over
// graphql-ws (the vendored browser build sets window.graphqlWs). Every request goes to this app.

const PAGE = 20;
const POST_FIELDS = `id text createdAt likeCount viewerHasLiked author { id handle displayName }`;
const FEED = `query HomeFeed($first: Int, $after: String, $order: FeedOrder) {
  homeFeed(first: $first, after: $after, order: $order) {
    nodes { ${POST_FIELDS} }
    pageInfo { hasNextPage endCursor }
  }
}`;
const UPDATES = `subscription HomeFeedUpdates {
  homeFeedUpdates { kind postId cursor post { ${POST_FIELDS} } }
}`;

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("homefeed.token"),
  me: JSON.parse(localStorage.getItem("homefeed.me") || "null"),
  order: "LATEST",
  cursor: null,
  hasMore: false,
  loading: false,
  generation: 0, // bumped on every reload, so a page answering an older load is dropped
  shown: new Set(), // ids of posts on screen
  pending: [], // live posts not yet shown (the pill counts them), newest first
  live: null,
};

class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.code = errors[0]?.extensions?.code;
  }
}

async function gql(query, variables = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) throw new GraphQLError(body.errors);
  return body.data;
}

function say(message) {
  $("status").textContent = message;
}

// --- signing in -------------------------------------------------------------------------------

async function authenticate(action, form) {
  const variables = { handle: form.handle.value.trim(), password: form.password.value };
  let mutation;
  if (action === "signUp") {
    variables.displayName = form.displayName.value.trim() || null;
    mutation = `mutation($handle: String!, $password: String!, $displayName: String) {
      signUp(handle: $handle, password: $password, displayName: $displayName) { token user { id handle } } }`;
  } else {
    mutation = `mutation($handle: String!, $password: String!) {
      logIn(handle: $handle, password: $password) { token user { id handle } } }`;
  }
  const data = await gql(mutation, variables);
  const { token, user } = data[action];
  state.token = token;
  state.me = user;
  localStorage.setItem("homefeed.token", token);
  localStorage.setItem("homefeed.me", JSON.stringify(user));
  form.reset();
  start();
}

function logOut() {
  localStorage.removeItem("homefeed.token");
  localStorage.removeItem("homefeed.me");
  state.token = state.me = null;
  state.live?.dispose();
  state.live = null;
  $("app").hidden = true;
  $("whoami").hidden = true;
  $("auth").hidden = false;
  say("Logged out.");
}

// --- the feed ---------------------------------------------------------------------------------

function formatTime(iso) {
  return new Date(iso).toLocaleString();
}

function renderPost(post) {
  const item = document.createElement("li");
  item.dataset.id = post.id;
  const article = document.createElement("article");
  article.setAttribute("aria-label", `Post by ${post.author.displayName}`);

  const head = document.createElement("p");
  head.className = "post-head";
  const name = document.createElement("strong");
  name.textContent = post.author.displayName;
  const time = document.createElement("time");
  time.dateTime = post.createdAt;
  time.textContent = formatTime(post.createdAt);
  head.append(name, ` @${post.author.handle} · `, time);

  const text = document.createElement("p");
  text.className = "post-text";
  text.textContent = post.text;

  const actions = document.createElement("p");
  actions.className = "post-actions";
  const like = document.createElement("button");
  like.type = "button";
  like.className = "like";
  setLike(like, post.viewerHasLiked, post.likeCount);
  like.addEventListener("click", () => toggleLike(post.id, like));
  actions.append(like);
  if (state.me && post.author.id === state.me.id) {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", "Delete this post");
    remove.addEventListener("click", () => deletePost(post.id));
    actions.append(remove);
  }
  article.append(head, text, actions);
  item.append(article);
  return item;
}

function setLike(button, liked, count) {
  button.setAttribute("aria-pressed", String(liked));
  button.dataset.count = String(count);
  button.textContent = `${liked ? "♥ Liked" : "♡ Like"} (${count})`;
}

async function toggleLike(id, button) {
  const liked = button.getAttribute("aria-pressed") === "true";
  const field = liked ? "unlikePost" : "likePost";
  try {
    const data = await gql(`mutation($id: ID!) { ${field}(id: $id) { likeCount viewerHasLiked } }`, { id });
    setLike(button, data[field].viewerHasLiked, data[field].likeCount);
  } catch (error) {
    say(error.message);
  }
}

async function deletePost(id) {
  try {
    await gql(`mutation($id: ID!) { deletePost(id: $id) }`, { id });
    removePost(id);
  } catch (error) {
    say(error.message);
  }
}

function appendPosts(posts) {
  const list = $("feed");
  for (const post of posts) {
    if (state.shown.has(post.id)) continue;
    state.shown.add(post.id);
    list.append(renderPost(post));
  }
}

function removePost(id) {
  state.pending = state.pending.filter((p) => p.id !== id);
  showPill();
  state.shown.delete(id);
  document.querySelector(`#feed li[data-id="${CSS.escape(id)}"]`)?.remove();
}

async function loadPage() {
  if (state.loading) return;
  state.loading = true;
  const generation = state.generation;
  $("feed").setAttribute("aria-busy", "true");
  try {
    const data = await gql(FEED, { first: PAGE, after: state.cursor, order: state.order });
    if (generation !== state.generation) return;
    const page = data.homeFeed;
    appendPosts(page.nodes);
    state.cursor = page.pageInfo.endCursor;
    state.hasMore = page.pageInfo.hasNextPage;
    $("more").hidden = !state.hasMore;
    $("feed-end").hidden = state.hasMore || state.shown.size === 0;
  } catch (error) {
    say(error.message);
  } finally {
    state.loading = false;
    $("feed").setAttribute("aria-busy", "false");
  }
}

function reload() {
  state.generation += 1;
  state.loading = false;
  state.cursor = null;
  state.hasMore = false;
  state.shown.clear();
  state.pending = [];
  showPill();
  $("feed").replaceChildren();
  return loadPage();
}

function selectTab(order) {
  state.order = order;
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.setAttribute("aria-selected", String(tab.dataset.order === order));
  }
  reload();
}

// --- live updates -----------------------------------------------------------------------------

function showPill() {
  const pill = $("pill");
  const count = state.pending.length;
  pill.hidden = count === 0;
  pill.textContent = count === 1 ? "1 new post" : `${count} new posts`;
}

function showPending() {
  const list = $("feed");
  // pending is newest first: insert from the oldest so the newest ends on top.
  for (const post of [...state.pending].reverse()) {
    if (state.shown.has(post.id)) continue;
    state.shown.add(post.id);
    list.prepend(renderPost(post));
  }
  state.pending = [];
  showPill();
  list.querySelector("li")?.scrollIntoView({ block: "nearest" });
}

function onUpdate(update) {
  if (update.kind === "ADDED" && update.post) {
    if (state.shown.has(update.post.id) || state.pending.some((p) => p.id === update.post.id)) return;
    state.pending.unshift(update.post);
    showPill();
  } else if (update.kind === "REMOVED") {
    removePost(update.postId);
  } else if (update.kind === "RESYNC") {
    reload();
  }
}

function subscribe() {
  state.live?.dispose();
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const client = window.graphqlWs.createClient({
    url: url.toString(),
    connectionParams: { authorization: `Bearer ${state.token}` },
    retryAttempts: Infinity,
    on: {
      // Updates are not stored: after a reconnect, what was missed is refetched.
      connected: (_socket, _payload, wasRetry) => wasRetry && reload(),
    },
  });
  client.subscribe(
    { query: UPDATES },
    {
      next: (result) => result.data && onUpdate(result.data.homeFeedUpdates),
      error: (error) => say(`Live updates stopped: ${error.message || error}`),
      complete: () => {},
    },
  );
  state.live = client;
}

// --- wiring -----------------------------------------------------------------------------------

function start() {
  $("auth").hidden = true;
  $("app").hidden = false;
  $("whoami").hidden = false;
  $("me").textContent = `@${state.me.handle}`;
  say("");
  subscribe();
  reload();
}

$("auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await authenticate(event.submitter?.value || "logIn", event.target);
  } catch (error) {
    say(error.message);
  }
});

$("compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    const data = await gql(`mutation($text: String!) { createPost(text: $text) { ${POST_FIELDS} } }`, {
      text: form.text.value,
    });
    form.reset();
    const post = data.createPost;
    state.pending = state.pending.filter((p) => p.id !== post.id);
    showPill();
    if (!state.shown.has(post.id)) {
      state.shown.add(post.id);
      $("feed").prepend(renderPost(post));
    }
  } catch (error) {
    say(error.message);
  }
});

$("follow").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const handle = form.handle.value.trim().replace(/^@/, "");
  try {
    const found = await gql(`query($h: String!) { user(handle: $h) { id } }`, { h: handle });
    if (!found.user) throw new Error(`No user @${handle}`);
    await gql(`mutation($id: ID!) { follow(userId: $id) { handle } }`, { id: found.user.id });
    form.reset();
    say(`You follow @${handle}.`);
  } catch (error) {
    say(error.message);
  }
});

$("logout").addEventListener("click", logOut);
$("pill").addEventListener("click", showPending);
$("more").addEventListener("click", loadPage);
for (const tab of document.querySelectorAll('[role="tab"]')) {
  tab.addEventListener("click", () => selectTab(tab.dataset.order));
}

// Infinite scroll: the next page loads as the end of the list comes into view.
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && state.hasMore && !state.loading) loadPage();
}).observe($("sentinel"));

if (state.token && state.me) start();
