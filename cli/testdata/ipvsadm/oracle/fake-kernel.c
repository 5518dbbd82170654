/*
 * A fake IPVS kernel for the real ipvsadm, preloaded with LD_PRELOAD (see capture.sh).
 * It fails the generic-netlink family lookup so that ipvsadm uses [gs]etsockopt, and answers
 * IP_VS_SO_GET_INFO/SERVICES/SERVICE/DESTS from the table file named by $FAKE_IPVS.
 * IP_VS_SO_GET_TIMEOUT answers "$FAKE_TIMEOUT" ("tcp tcpfin udp"), IP_VS_SO_GET_DAEMON answers
 * "$FAKE_DAEMON" ("state ifname syncid" for the first and second slot), and opening
 * /proc/net/ip_vs_conn opens the file named by $FAKE_CONN instead; each fails when unset.
 * Writes print the request ipvsadm built on stdout ("op=N svc ... | dest ...", "op=N timeout
 * ...", "op=N daemon ...") and succeed, or fail with errno $FAKE_ERRNO when it is set.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <stddef.h>

#define BASE (64+1024+64)
struct stats_user { uint32_t conns, inpkts, outpkts; uint64_t inbytes, outbytes; uint32_t cps, inpps, outpps, inbps, outbps; };
struct svc_entry_kern { uint16_t protocol; uint32_t addr; uint16_t port; uint32_t fwmark; char sched[16]; unsigned flags, timeout; uint32_t netmask; unsigned num_dests; struct stats_user stats; };
struct dest_entry_kern { uint32_t addr; uint16_t port; unsigned conn_flags; int weight; uint32_t uthr, lthr, active, inact, persist; struct stats_user stats; };
struct get_dests_kern { uint16_t protocol; uint32_t addr; uint16_t port; uint32_t fwmark; unsigned num_dests; struct dest_entry_kern e[0]; };
struct getinfo { unsigned version, size, num_services; };

#define MAXS 64
#define MAXD 64
static struct svc_entry_kern svcs[MAXS];
static struct dest_entry_kern dests[MAXS][MAXD];
static int nsvc = -1;
static int fakefd = -1;

static void rdstats(char **p, struct stats_user *s) {
  unsigned long long v[10] = {0};
  for (int i = 0; i < 10; i++) { char *t = strtok_r(NULL, " \t\n", p); if (t) v[i] = strtoull(t, NULL, 0); }
  s->conns=v[0]; s->inpkts=v[1]; s->outpkts=v[2]; s->inbytes=v[3]; s->outbytes=v[4];
  s->cps=v[5]; s->inpps=v[6]; s->outpps=v[7]; s->inbps=v[8]; s->outbps=v[9];
}
static void load(void) {
  if (nsvc >= 0) return;
  nsvc = 0;
  const char *f = getenv("FAKE_IPVS");
  if (!f) return;
  FILE *fp = fopen(f, "r"); if (!fp) return;
  char line[1024];
  while (fgets(line, sizeof line, fp)) {
    char *p; char *t = strtok_r(line, " \t\n", &p);
    if (!t) continue;
    if (!strcmp(t, "S")) {
      struct svc_entry_kern *s = &svcs[nsvc++]; memset(s, 0, sizeof *s);
      char *proto = strtok_r(NULL, " \t\n", &p);
      s->protocol = !strcmp(proto, "tcp") ? IPPROTO_TCP : !strcmp(proto, "udp") ? IPPROTO_UDP : !strcmp(proto,"sctp") ? IPPROTO_SCTP : 0;
      inet_pton(AF_INET, strtok_r(NULL, " \t\n", &p), &s->addr);
      s->port = htons(atoi(strtok_r(NULL, " \t\n", &p)));
      s->fwmark = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      strncpy(s->sched, strtok_r(NULL, " \t\n", &p), 15);
      s->flags = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      s->timeout = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      inet_pton(AF_INET, strtok_r(NULL, " \t\n", &p), &s->netmask);
      rdstats(&p, &s->stats);
    } else if (!strcmp(t, "D") && nsvc > 0) {
      struct svc_entry_kern *s = &svcs[nsvc-1];
      struct dest_entry_kern *d = &dests[nsvc-1][s->num_dests++]; memset(d, 0, sizeof *d);
      inet_pton(AF_INET, strtok_r(NULL, " \t\n", &p), &d->addr);
      d->port = htons(atoi(strtok_r(NULL, " \t\n", &p)));
      d->conn_flags = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      d->weight = atoi(strtok_r(NULL, " \t\n", &p));
      d->uthr = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      d->lthr = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      d->active = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      d->inact = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      d->persist = strtoul(strtok_r(NULL, " \t\n", &p), NULL, 0);
      rdstats(&p, &d->stats);
    }
  }
  fclose(fp);
}
struct timeout_user { int tcp, tcp_fin, udp; };
struct daemon_kern { int state; char mcast_ifn[16]; int syncid; };
static const char *redirect(const char *path) {
  const char *c = getenv("FAKE_CONN");
  if (!strcmp(path, "/proc/net/ip_vs_conn")) return c ? c : "/nonexistent/ip_vs_conn";
  return path;
}
FILE *fopen(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (!real) real = dlsym(RTLD_NEXT, "fopen");
  return real(redirect(path), mode);
}
FILE *fopen64(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (!real) real = dlsym(RTLD_NEXT, "fopen64");
  return real(redirect(path), mode);
}
int genl_ctrl_resolve(void *sk, const char *name) { (void)sk; (void)name; return -1; }
int socket(int domain, int type, int protocol) {
  static int (*real)(int,int,int);
  if (!real) real = dlsym(RTLD_NEXT, "socket");
  if (domain == AF_INET && type == SOCK_RAW && protocol == IPPROTO_RAW) { fakefd = open("/dev/null", O_RDONLY); return fakefd; }
  return real(domain, type, protocol);
}
static int find(uint16_t proto, uint32_t addr, uint16_t port, uint32_t fwmark) {
  for (int i = 0; i < nsvc; i++) {
    if (fwmark) { if (svcs[i].fwmark == fwmark) return i; }
    else if (!svcs[i].fwmark && svcs[i].protocol == proto && svcs[i].addr == addr && svcs[i].port == port) return i;
  }
  return -1;
}
int getsockopt(int fd, int level, int opt, void *val, socklen_t *len) {
  static int (*real)(int,int,int,void*,socklen_t*);
  if (!real) real = dlsym(RTLD_NEXT, "getsockopt");
  if (fd != fakefd || level != IPPROTO_IP) return real(fd, level, opt, val, len);
  load();
  switch (opt - BASE) {
  case 1: { struct getinfo *g = val; g->version = 0x010201; g->size = 4096; g->num_services = nsvc; return 0; }
  case 2: { unsigned *n = val; *n = nsvc;
            struct svc_entry_kern *e = (struct svc_entry_kern *)((char*)val + offsetof(struct { unsigned n; struct svc_entry_kern e[1]; }, e));
            for (int i = 0; i < nsvc; i++) e[i] = svcs[i]; return 0; }
  case 3: { struct svc_entry_kern *q = val; int i = find(q->protocol, q->addr, q->port, q->fwmark);
            if (i < 0) { errno = ESRCH; return -1; } *q = svcs[i]; return 0; }
  case 4: { struct get_dests_kern *q = val; int i = find(q->protocol, q->addr, q->port, q->fwmark);
            if (i < 0) { errno = ESRCH; return -1; } q->num_dests = svcs[i].num_dests;
            for (unsigned j = 0; j < svcs[i].num_dests; j++) q->e[j] = dests[i][j]; return 0; }
  case 6: { const char *t = getenv("FAKE_TIMEOUT"); struct timeout_user *u = val;
            if (!t) break;
            if (sscanf(t, "%d %d %d", &u->tcp, &u->tcp_fin, &u->udp) != 3) break; return 0; }
  case 7: { const char *t = getenv("FAKE_DAEMON"); struct daemon_kern *d = val;
            if (!t) break;
            memset(d, 0, 2 * sizeof *d);
            sscanf(t, "%d %15s %d %d %15s %d", &d[0].state, d[0].mcast_ifn, &d[0].syncid,
                   &d[1].state, d[1].mcast_ifn, &d[1].syncid);
            return 0; }
  }
  errno = ENOPROTOOPT; return -1;
}
int setsockopt(int fd, int level, int opt, const void *val, socklen_t len) {
  static int (*real)(int,int,int,const void*,socklen_t);
  if (!real) real = dlsym(RTLD_NEXT, "setsockopt");
  if (fd != fakefd) return real(fd, level, opt, val, len);
  const char *e = getenv("FAKE_ERRNO");
  if (e && atoi(e)) { errno = atoi(e); return -1; }
  struct svc_kern { uint16_t protocol; uint32_t addr; uint16_t port; uint32_t fwmark; char sched[16]; unsigned flags, timeout; uint32_t netmask; };
  struct dest_kern { uint32_t addr; uint16_t port; unsigned conn_flags; int weight; uint32_t uthr, lthr; };
  char a[16], m[16];
  if (opt - BASE == 10 && len == sizeof(struct timeout_user)) {
    const struct timeout_user *t = val;
    printf("op=10 timeout tcp=%d tcpfin=%d udp=%d\n", t->tcp, t->tcp_fin, t->udp);
  } else if ((opt - BASE == 11 || opt - BASE == 12) && len == sizeof(struct daemon_kern)) {
    const struct daemon_kern *d = val;
    printf("op=%d daemon state=%d ifn=%s syncid=%d\n", opt - BASE, d->state, d->mcast_ifn, d->syncid);
  } else if (len >= sizeof(struct svc_kern)) {
    const struct svc_kern *k = val;
    inet_ntop(AF_INET, &k->addr, a, sizeof a); inet_ntop(AF_INET, &k->netmask, m, sizeof m);
    printf("op=%d svc proto=%u addr=%s port=%u fwmark=%u sched=%s flags=%#x timeout=%u netmask=%s", opt - BASE, k->protocol, a, ntohs(k->port), k->fwmark, k->sched, k->flags, k->timeout, m);
    if (len >= sizeof(struct svc_kern) + sizeof(struct dest_kern)) {
      const struct dest_kern *d = (const void *)((const char *)val + sizeof(struct svc_kern));
      inet_ntop(AF_INET, &d->addr, a, sizeof a);
      printf(" | dest addr=%s port=%u fwd=%u weight=%d uthr=%u lthr=%u", a, ntohs(d->port), d->conn_flags, d->weight, d->uthr, d->lthr);
    }
    printf("\n");
  } else printf("op=%d\n", opt - BASE);
  return 0;
}
