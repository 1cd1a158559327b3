/* SPDX-License-Identifier: MIT */
/*
 * mg_svg.h: reading the SVGs memguard and unet-train draw, with libxml2,
 * for the tests that check them (test_plot.c, test_unet_plots.c): elements
 * and attributes, the text, a panel's scales (the data-x/y/w/h and
 * data-t0/t1/v0/v1 attributes its <g> carries) and a PNG's size. Test code
 * only; it draws and renders nothing.
 */
#ifndef MG_SVG_H
#define MG_SVG_H

#include "mg_test.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool is_elem(xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static inline bool attr_is(xmlNode *n, const char *name, const char *want)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    bool eq = v && strcmp((const char *)v, want) == 0;
    xmlFree(v);
    return eq;
}

/* An attribute as a number; NaN when n or the attribute is missing. */
static inline double attr_num(xmlNode *n, const char *name)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    double d = v ? strtod((const char *)v, NULL) : NAN;
    xmlFree(v);
    return d;
}

/* The first element at or below n (and n's later siblings) named `name`
 * whose `attr` is `val` (any when attr is NULL). */
static inline xmlNode *find(xmlNode *n, const char *name, const char *attr, const char *val)
{
    for (; n; n = n->next) {
        if (is_elem(n, name) && (!attr || attr_is(n, attr, val))) return n;
        xmlNode *c = find(n->children, name, attr, val);
        if (c) return c;
    }
    return NULL;
}

/* Every element below n (not n's siblings) named `name` with attr = val. */
static inline int find_all(xmlNode *n, const char *name, const char *attr, const char *val,
                           xmlNode **out, int cap)
{
    int k = 0;
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (is_elem(c, name) && (!attr || attr_is(c, attr, val)) && k < cap) out[k++] = c;
        k += find_all(c, name, attr, val, out + k, cap - k);
    }
    return k;
}

/* All the text below n, concatenated. */
static inline void text_of(xmlNode *n, char *buf, size_t len)
{
    xmlChar *t = xmlNodeGetContent(n);
    snprintf(buf, len, "%s", t ? (const char *)t : "");
    xmlFree(t);
}

/* A well-formed SVG document (no network), or NULL after a failed check. */
static inline xmlDoc *load_svg(const char *path)
{
    xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
    if (!doc) { MG_FAIL_("%s is not well-formed XML", path); return NULL; }
    xmlNode *svg = xmlDocGetRootElement(doc);
    CHECK(svg && is_elem(svg, "svg"));
    CHECK(svg && svg->ns && strcmp((const char *)svg->ns->href, "http://www.w3.org/2000/svg") == 0);
    return doc;
}

/* A panel: its <g> and the scales it declares. */
typedef struct panel {
    xmlNode *g;
    double x, y, w, h, t0, t1, v0, v1;
} panel;

static inline panel get_panel(xmlNode *root, const char *id)
{
    panel p = {0};
    p.g = find(root, "g", "id", id);
    if (!p.g) { MG_FAIL_("no panel %s", id); return p; }
    p.x = attr_num(p.g, "data-x");
    p.y = attr_num(p.g, "data-y");
    p.w = attr_num(p.g, "data-w");
    p.h = attr_num(p.g, "data-h");
    p.t0 = attr_num(p.g, "data-t0");
    p.t1 = attr_num(p.g, "data-t1");
    p.v0 = attr_num(p.g, "data-v0");
    p.v1 = attr_num(p.g, "data-v1");
    return p;
}

/* Where the panel draws time t and value v. */
static inline double px(const panel *p, double t) { return p->x + (t - p->t0) / (p->t1 - p->t0) * p->w; }
static inline double py(const panel *p, double v) { return p->y + p->h - (v - p->v0) / (p->v1 - p->v0) * p->h; }

/* A big-endian 32-bit field (a PNG's IHDR width and height). */
static inline uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif /* MG_SVG_H */
