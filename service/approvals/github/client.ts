// The broker as a GitHub App: JWTs signed with the App's key buy installation tokens (@octokit/app,
// through @octokit/auth-app, which caches each installation's token until shortly before it expires),
// and every call the approvals work makes to GitHub goes through `request` here. The installation is
// the configured one, else looked up once per repository (GET /repos/{owner}/{repo}/installation).
// Errors carry the operation and GitHub's status, never a token.
import { App } from '@octokit/app';

export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';

export interface GitHubAppSettings {
  appId: string | number;
  /** PEM (PKCS#1 or PKCS#8) */
  privateKey: string;
  /** default https://api.github.com */
  apiUrl?: string | undefined;
  installationId?: number | undefined;
}

/** A GitHub API call that failed: the route, GitHub's status and message (no credentials). */
export class GitHubApiError extends Error {
  constructor(
    readonly route: string,
    readonly status: number,
    detail: string,
  ) {
    super(`GitHub ${route} answered ${status}${detail ? `: ${detail}` : ''}`);
  }
}

type Params = Record<string, unknown>;
interface OctokitLike {
  request(route: string, params?: Params): Promise<{ status: number; data: unknown }>;
}

export interface GitHubClient {
  /** call `route` ("GET /repos/{owner}/{repo}/…") as the installation that covers owner/repo */
  request<T = unknown>(repository: string, route: string, params?: Params): Promise<T>;
}

function splitRepository(repository: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = repository.split('/');
  if (!owner || !repo || rest.length > 0) throw new Error(`"${repository}" is not owner/repo`);
  return { owner, repo };
}

function failure(route: string, err: unknown): GitHubApiError {
  const e = err as { status?: number; message?: string; response?: { data?: { message?: string } } };
  const detail =
    e.response?.data?.message ?? (typeof e.status === 'number' ? '' : (e.message ?? String(err)));
  return new GitHubApiError(route, typeof e.status === 'number' ? e.status : 0, detail.slice(0, 200));
}

export class GitHubAppClient implements GitHubClient {
  readonly #app: App;
  readonly #fixedInstallation: number | undefined;
  /** repository (lower case) → installation id */
  readonly #installations = new Map<string, Promise<number>>();
  readonly #octokits = new Map<number, Promise<OctokitLike>>();

  constructor(settings: GitHubAppSettings) {
    const baseUrl = (settings.apiUrl ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, '');
    // @octokit/app builds on @octokit/core's Octokit; its class (not a dependency of ours by name) is
    // reached through a first App, and given the base URL for GHES and the tests' stand-in.
    const probe = new App({ appId: settings.appId, privateKey: settings.privateKey });
    const Base = probe.octokit.constructor as unknown as { defaults(o: Params): unknown };
    this.#app = new App({
      appId: settings.appId,
      privateKey: settings.privateKey,
      Octokit: Base.defaults({ baseUrl, userAgent: 'hoop-broker' }) as never,
      log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    });
    this.#fixedInstallation = settings.installationId;
  }

  async request<T = unknown>(repository: string, route: string, params: Params = {}): Promise<T> {
    const { owner, repo } = splitRepository(repository);
    const octokit = await this.#installationOctokit(owner, repo);
    try {
      const res = await octokit.request(route, { owner, repo, ...params });
      return res.data as T;
    } catch (err) {
      throw failure(route, err);
    }
  }

  #installationOctokit(owner: string, repo: string): Promise<OctokitLike> {
    return this.#installationId(owner, repo).then((id) => {
      let octokit = this.#octokits.get(id);
      if (!octokit) {
        octokit = this.#app.getInstallationOctokit(id) as Promise<unknown> as Promise<OctokitLike>;
        // a failed exchange is not cached: the next call tries again
        octokit.catch(() => this.#octokits.delete(id));
        this.#octokits.set(id, octokit);
      }
      return octokit.catch((err: unknown) => {
        throw failure('POST /app/installations/{installation_id}/access_tokens', err);
      });
    });
  }

  #installationId(owner: string, repo: string): Promise<number> {
    if (this.#fixedInstallation !== undefined) return Promise.resolve(this.#fixedInstallation);
    const key = `${owner}/${repo}`.toLowerCase();
    let id = this.#installations.get(key);
    if (!id) {
      const route = 'GET /repos/{owner}/{repo}/installation';
      id = (this.#app.octokit as unknown as OctokitLike)
        .request(route, { owner, repo })
        .then((res) => {
          const found = (res.data as { id?: unknown }).id;
          if (typeof found !== 'number') throw new GitHubApiError(route, res.status, 'no installation id');
          return found;
        })
        .catch((err: unknown) => {
          this.#installations.delete(key);
          throw err instanceof GitHubApiError ? err : failure(route, err);
        });
      this.#installations.set(key, id);
    }
    return id;
  }
}
