// The console's address says where the user is: `/<page>` or `/<page>/<id>` (a recording, a
// past meeting). A shared link, a reload and the browser's Back and Forward land there.
// The server answers every such path with the console (`index.html`).
import { useCallback, useEffect, useState } from 'react';

export type Route = { page: string; id: string | null };

export function parseRoute(pathname: string): Route {
  const parts = pathname.split('/').filter(Boolean);
  const decode = (part: string | undefined) => {
    if (part === undefined) return null;
    try {
      return decodeURIComponent(part);
    } catch {
      return null; // a mangled link opens the page, not an error
    }
  };
  return { page: decode(parts[0]) ?? '', id: decode(parts[1]) };
}

export function routePath(route: Route): string {
  return `/${[route.page, route.id].filter((p): p is string => !!p).map(encodeURIComponent).join('/')}`;
}

/// The current route, and a way to go elsewhere: a new entry in the browser's history, which
/// drops the address's `#…` unless `keepHash` (a link to a line of minutes, being followed).
export function useRoute(): [Route, (route: Route, keepHash?: boolean) => void] {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const moved = () => setRoute(parseRoute(window.location.pathname));
    window.addEventListener('popstate', moved);
    return () => window.removeEventListener('popstate', moved);
  }, []);
  const go = useCallback((next: Route, keepHash = false) => {
    const path = routePath(next);
    if (path !== window.location.pathname) {
      window.history.pushState(null, '', keepHash ? path + window.location.hash : path);
    }
    setRoute(next);
  }, []);
  return [route, go];
}
